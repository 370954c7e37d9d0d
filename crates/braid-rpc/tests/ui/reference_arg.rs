use braid_rpc::service;

#[service]
pub trait Greeter {
    fn greet(&self, name: &str) -> String;
}

fn main() {}
