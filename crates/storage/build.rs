// Embedded migrations are read at compile time: a new or edited migration must
// rebuild this crate, or it would silently ship without it.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
    println!("cargo:rerun-if-changed=../../migrations/sqlite");
    println!("cargo:rerun-if-changed=../../migrations/postgres");
}
