//! `nbtrail-app [CASE_DIR]`: the desktop review app, opening `CASE_DIR` when given.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    let case = std::env::args_os().nth(1).map(std::path::PathBuf::from);
    nbtrail_app::run(case);
}
