//! `nbtrail-app [CASE_DIR]`: the desktop review app, opening `CASE_DIR` when given.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    #[cfg(target_os = "linux")]
    software_rendering();
    let case = std::env::args_os().nth(1).map(std::path::PathBuf::from);
    nbtrail_app::run(case);
}

/// Without a GPU, WebKitGTK paints far faster on the CPU without compositing
/// ([`nbtrail_app::software_rendering_env`]). Its settings are read from the environment when WebKit starts,
/// and this crate has no `unsafe` (so no `set_var`): the process replaces itself with the same program,
/// arguments and environment plus those variables — once, since they are then set. If that fails the app
/// runs as it is.
#[cfg(target_os = "linux")]
fn software_rendering() {
    use std::os::unix::process::CommandExt;
    let vars = nbtrail_app::software_rendering_env(nbtrail_app::has_gpu(), |k| {
        std::env::var_os(k).is_some()
    });
    if vars.is_empty() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut cmd = std::process::Command::new(exe);
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    let _err = cmd.args(args).envs(vars).exec();
}
