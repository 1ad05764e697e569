//! What the cargo benchmarks share: settings from the environment and a runtime.

/// A numeric setting from the environment (`BENCH_*`), or its default.
pub fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub fn run(benchmark: impl std::future::Future<Output = ()>) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(benchmark);
}
