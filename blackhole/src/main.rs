//! The blackhole: answers 200 to everything and keeps nothing.
fn main() {}
