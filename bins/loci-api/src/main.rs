//! `loci-api`: the REST server alone (`loci serve` runs the same thing).

use loci_app::telemetry;
use loci_settings::{Settings, Sources};

fn main() -> anyhow::Result<()> {
    let settings = match Settings::load(&Sources::from_process(None)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let _telemetry = telemetry::init(&settings.telemetry);
    loci_api::serve(settings)?;
    Ok(())
}
