//! The `braid` command.
fn main() {
    braid::init();
}
