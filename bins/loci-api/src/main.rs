//! `loci-api`: the REST server alone (`loci serve` runs the same thing).

use anyhow::Context;
use loci_api::telemetry;
use loci_settings::{Settings, Sources};

fn main() -> anyhow::Result<()> {
    let settings = Settings::load(&Sources::from_process(None)).context("loading settings")?;
    telemetry::init(&settings.telemetry);
    loci_api::serve(settings)?;
    Ok(())
}
