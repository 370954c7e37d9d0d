use braid_rpc::service;

#[service]
pub trait Store<T> {
    fn get(&self, key: String) -> Option<T>;
}

fn main() {}
