//! Declares the `braid_loom` cfg, under which the lock-free handshakes are model-checked:
//! `RUSTFLAGS="--cfg braid_loom" cargo test -p braid-sync --release --lib loom`.
//! (A crate-specific name: a global `--cfg loom` turns tokio, under braid-core, into its
//! own loom build, which does not compile.)
fn main() {
    println!("cargo::rustc-check-cfg=cfg(braid_loom)");
}
