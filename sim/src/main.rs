//! `vecraft-sim`: run seeded chaos simulations and check histories.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("the simulator binary is not built yet")
}
