use braid_rpc::service;

#[service]
pub trait Counter {
    fn increment(&mut self) -> u64;
}

#[service]
pub trait Factory {
    fn create(name: String) -> u64;
}

#[service]
pub trait Versioned {
    fn version() -> u32;
}

fn main() {}
