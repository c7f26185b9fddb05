//! The mock upstream as a separate process for the real-process tests: the same code as
//! `switchyard-mock-upstream` (its `main` is this line), built in this package so tests can find
//! it through `CARGO_BIN_EXE_*`.

fn main() -> anyhow::Result<()> {
    switchyard_mock::cli::main()
}
