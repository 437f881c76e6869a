//! `strata schema`: the JSON Schema of strata.toml on stdout.

use crate::error::{Error, Result};

/// Prints the schema.
pub fn run() -> Result<()> {
    let text = serde_json::to_string_pretty(&crate::spec::json_schema())
        .map_err(|e| Error::Usage(e.to_string()))?;
    println!("{text}");
    Ok(())
}
