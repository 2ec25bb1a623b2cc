//! `rocmforge`: inspect devices and compilers, fill and manage the kernel cache, render kernels,
//! and run the self-test.

mod cli;

fn main() {
    // Behave like other command-line tools when the reader of our output goes away (`| head`).
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROCMFORGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    match cli::run() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("rocmforge: error: {e}");
            std::process::exit(1);
        }
    }
}
