use braid_rpc::service;

#[service]
pub trait Clock {
    async fn now(&self) -> u64;
}

fn main() {}
