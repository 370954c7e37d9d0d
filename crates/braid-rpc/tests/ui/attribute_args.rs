use braid_rpc::service;

#[service(name = "shop")]
pub trait Shop {
    fn price(&self, item: String) -> u64;
}

#[service]
pub trait Log {
    #[oneway(timeout = 5)]
    fn write(&self, line: String);
}

fn main() {}
