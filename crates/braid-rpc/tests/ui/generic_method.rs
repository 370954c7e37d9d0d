use braid_rpc::service;

#[service]
pub trait Store {
    fn put<T: serde::Serialize>(&self, value: T);
}

#[service]
pub trait Shape {
    fn size(&self) -> u64
    where
        Self: Sized;
}

fn main() {}
