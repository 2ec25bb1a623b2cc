//! (bench being written)
fn main() {}
