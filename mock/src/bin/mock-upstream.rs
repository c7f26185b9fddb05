//! `switchyard-mock-upstream`: the mock LLM upstream on a port; see `switchyard_mock::cli`.

fn main() -> anyhow::Result<()> {
    switchyard_mock::cli::main()
}
