//! The app's command list is declared once: the `#[tauri::command]` functions of `src/commands.rs`. From
//! them this script
//!
//! * generates the app's permissions (one `allow-<command>` each) for Tauri,
//! * writes the `generate_handler!` list `src/lib.rs` includes (`$OUT_DIR/handlers.rs`),
//! * and fails the build when the window's capability (`capabilities/default.json`) or the UI's calls
//!   (`../ui/src/lib/ipc.ts`) name a command that does not exist, or miss one — so a command cannot be
//!   added, renamed or removed in one place only.

use std::collections::BTreeSet;
use std::fs;

/// The names of the functions marked `#[tauri::command]`, in file order.
fn commands(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut marked = false;
    for line in src.lines().map(str::trim) {
        if line.starts_with("#[tauri::command") {
            marked = true;
            continue;
        }
        if marked && !line.starts_with("#[") && !line.starts_with("///") {
            let name = line
                .trim_start_matches("pub ")
                .trim_start_matches("async ")
                .strip_prefix("fn ")
                .and_then(|rest| rest.split(['(', '<']).next())
                .unwrap_or_else(|| {
                    panic!("src/commands.rs: `#[tauri::command]` not on a fn: {line}")
                });
            out.push(name.to_string());
            marked = false;
        }
    }
    out
}

/// The `allow-…` permissions the capability grants.
fn granted(capability: &str) -> BTreeSet<String> {
    capability
        .split('"')
        .filter_map(|s| s.strip_prefix("allow-"))
        .map(|s| s.replace('-', "_"))
        .collect()
}

/// The command names the UI invokes (`call<T>("name"`).
fn called(ipc: &str) -> BTreeSet<String> {
    ipc.split("call<")
        .skip(1)
        .filter_map(|rest| rest.split_once(">(\"").map(|(_, r)| r))
        .filter_map(|r| r.split('"').next())
        .map(str::to_string)
        .collect()
}

fn main() {
    for f in [
        "src/commands.rs",
        "capabilities/default.json",
        "../ui/src/lib/ipc.ts",
    ] {
        println!("cargo:rerun-if-changed={f}");
    }
    let src = fs::read_to_string("src/commands.rs").expect("src/commands.rs");
    let names = commands(&src);
    let set: BTreeSet<String> = names.iter().cloned().collect();
    let capability =
        fs::read_to_string("capabilities/default.json").expect("capabilities/default.json");
    let granted = granted(&capability);
    assert!(
        granted == set,
        "capabilities/default.json grants {granted:?} but src/commands.rs defines {set:?}"
    );
    // The UI is checked only where it is part of the tree (it always is in this repository).
    if let Ok(ipc) = fs::read_to_string("../ui/src/lib/ipc.ts") {
        let called = called(&ipc);
        assert!(
            called == set,
            "ui/src/lib/ipc.ts calls {called:?} but src/commands.rs defines {set:?}"
        );
    }
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");
    let handlers = format!(
        "tauri::generate_handler![{}]",
        names
            .iter()
            .map(|n| format!("commands::{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    fs::write(format!("{out}/handlers.rs"), handlers).expect("handlers.rs");
    let names: &'static [&'static str] = Box::leak(
        names
            .into_iter()
            .map(|n| &*Box::leak(n.into_boxed_str()))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(names)),
    )
    .expect("tauri build");
}
