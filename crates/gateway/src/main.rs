//! nbtrail-gateway (in progress).
fn main() {}
