//! The UI is embedded at compile time (rust-embed reads `ui/dist` in the derive): a rebuilt UI
//! must rebuild this crate. Cargo scans a watched directory recursively.
fn main() {
    let dist = std::path::Path::new("../../ui/dist");
    if dist.is_dir() {
        println!("cargo:rerun-if-changed=../../ui/dist");
    } else {
        // A missing path would rerun this script, and rebuild everything above this crate, on
        // every build; its parent exists, and changes when `dist` appears.
        println!("cargo:rerun-if-changed=../../ui");
    }
}
