//! One binary, two shells: in the browser (wasm32) it mounts the Leptos app; natively it runs
//! the command line.

#[cfg(target_arch = "wasm32")]
fn main() {
    tabdiffusion::web::start();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    use clap::Parser;
    let cli = tabdiffusion::cli::Cli::parse();
    if let Err(message) = tabdiffusion::cli::run(cli) {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}
