//! The image config and its history: one entry per layer, with the
//! helper's record of each copy layer (contracts §5).

use super::lower::{LayerNote, Lower};
use super::{Failure, protocol};
use crate::frontend::gateway::Gateway;
use crate::helper::CopyRecord;
use crate::llb::State;
use crate::spec::ResolvedSpec;

impl<G: Gateway> Lower<'_, G> {
    /// Each layer's history comment: a copy layer's from its helper's
    /// record (solved and read here), a run layer's fixed.
    pub async fn history_comments(
        &self,
        layers: &[(String, State, LayerNote)],
    ) -> Result<Vec<String>, Failure> {
        let gw = self.gw;
        let solve_opts = &self.solve_opts;
        futures_util::future::try_join_all(layers.iter().map(|(id, _, note)| async move {
            Ok::<_, Failure>(match note {
                LayerNote::Copy(meta) => {
                    let r = gw.solve(&meta.marshal().to_bytes(), solve_opts).await?;
                    let bytes = gw.read_file(&r, "record.json", None).await?;
                    let rec: CopyRecord = serde_json::from_slice(&bytes)
                        .map_err(|e| protocol(format!("helper record of `{id}`: {e}")))?;
                    format!("strata/v1 key={} inputs={}", rec.key, rec.inputs)
                }
                LayerNote::Run => "strata/v1 run".to_string(),
            })
        }))
        .await
    }

    /// The image config of `layers` on a base with `base_config`, with one
    /// history entry per layer carrying its comment.
    pub fn config(
        &self,
        base_config: Option<&serde_json::Value>,
        layers: &[(String, State, LayerNote)],
        comments: Vec<String>,
    ) -> Result<Vec<u8>, Failure> {
        let created = self
            .opts
            .source_date_epoch
            .unwrap_or(self.spec.image.timestamp);
        let history: Vec<_> = layers
            .iter()
            .zip(comments)
            .map(|((id, _, _), comment)| crate::oci::image::HistoryEntry {
                created: Some(crate::oci::image::rfc3339(created)),
                created_by: Some(format!("strata layer {id}")),
                author: None,
                comment: Some(comment),
                empty_layer: false,
            })
            .collect();
        // `label:NAME` options (`docker buildx build --label`) over the spec's.
        let mut spec = self.spec.clone();
        for (name, v) in &self.opts.labels {
            spec.image.labels.insert(name.clone(), v.clone());
        }
        image_config(&spec, base_config, created, &history, layers)
    }
}

/// The image config: the spec's settings over the base's, with `history`;
/// no `rootfs` (the exporter writes it).
fn image_config(
    spec: &ResolvedSpec,
    base: Option<&serde_json::Value>,
    created: u64,
    history: &[crate::oci::image::HistoryEntry],
    layers: &[(String, State, LayerNote)],
) -> Result<Vec<u8>, Failure> {
    let settings = crate::oci::build::settings(spec);
    let platform = crate::oci::build::oci_platform(&spec.platform);
    // The exporter fills in rootfs; placeholders keep build_config's check.
    let diff_ids: Vec<crate::oci::Digest> = layers
        .iter()
        .map(|(id, _, _)| crate::oci::Digest::of(id.as_bytes()))
        .collect();
    let mut config = crate::oci::image::build_config(&crate::oci::image::ConfigInput {
        base,
        platform: &platform,
        created,
        settings: &settings,
        diff_ids: &diff_ids,
        history,
    })
    .map_err(|e| protocol(e.to_string()))?;
    if let Some(obj) = config.as_object_mut() {
        obj.remove("rootfs");
    }
    serde_json::to_vec(&config).map_err(|e| protocol(e.to_string()))
}
