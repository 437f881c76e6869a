//! The image config and its history: one entry per layer, with the
//! helper's record of each copy layer (docs/design.md §5).

use super::BuildError;
use super::lower::{LayerNote, Lower};
use crate::frontend::gateway::{Gateway, Ref};
use crate::helper::CopyRecord;
use crate::llb::State;
use crate::plan::record::{self, Record};
use crate::spec::ResolvedSpec;

impl<G: Gateway> Lower<'_, G> {
    /// Each copy layer's record output solved without evaluation (a ref
    /// BuildKit computes when it is read), `None` for a run layer: sent
    /// beside the image's solve, so reading the records after it is one
    /// round trip, not two.
    pub(crate) async fn record_refs(
        &self,
        layers: &[(String, State, LayerNote)],
    ) -> Result<Vec<Option<Ref>>, BuildError> {
        let (gw, solve_opts) = (self.gw, &self.solve_opts);
        futures_util::future::try_join_all(layers.iter().map(|(_, _, note)| async move {
            Ok::<_, BuildError>(match note {
                LayerNote::Copy(meta) => {
                    Some(gw.solve(&meta.marshal().to_bytes(), solve_opts).await?)
                }
                LayerNote::Run(_) => None,
            })
        }))
        .await
    }

    /// Each layer's history comment: a copy layer's from its helper's
    /// record (read from its ref of [`Self::record_refs`], all at once), a
    /// run layer's fixed.
    pub(crate) async fn history_comments(
        &self,
        layers: &[(String, State, LayerNote)],
        records: &[Option<Ref>],
    ) -> Result<Vec<String>, BuildError> {
        let gw = self.gw;
        futures_util::future::try_join_all(layers.iter().zip(records).map(
            |((id, _, note), r)| async move {
                Ok::<_, BuildError>(match (note, r) {
                    (_, Some(r)) => {
                        let bytes = gw.read_file(r, "record.json", None).await?;
                        let rec: CopyRecord = serde_json::from_slice(&bytes).map_err(|source| {
                            BuildError::Record {
                                layer: id.clone(),
                                source,
                            }
                        })?;
                        Record::copy(rec.key, rec.inputs).to_string()
                    }
                    (LayerNote::Run(normalized), None) => super::normalize::comment(*normalized),
                    (LayerNote::Copy(_), None) => {
                        return Err(BuildError::Internal(format!(
                            "copy layer `{id}` has no record to read"
                        )));
                    }
                })
            },
        ))
        .await
    }

    /// The image config of `layers` on a base with `base_config`, with one
    /// history entry per layer carrying its comment.
    pub(crate) fn config(
        &self,
        base_config: Option<&serde_json::Value>,
        layers: &[(String, State, LayerNote)],
        comments: Vec<String>,
    ) -> Result<Vec<u8>, BuildError> {
        let created = self
            .opts
            .source_date_epoch
            .unwrap_or(self.spec.image.timestamp);
        let history: Vec<_> = layers
            .iter()
            .zip(comments)
            .map(|((id, _, _), comment)| crate::oci::image::HistoryEntry {
                created: Some(crate::oci::image::rfc3339(created)),
                created_by: Some(record::created_by(id)),
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
) -> Result<Vec<u8>, BuildError> {
    let settings = crate::oci::build::settings(spec);
    // The exporter fills in rootfs; placeholders keep build_config's check.
    let diff_ids: Vec<crate::oci::Digest> = layers
        .iter()
        .map(|(id, _, _)| crate::oci::Digest::of(id.as_bytes()))
        .collect();
    let mut config = crate::oci::image::build_config(&crate::oci::image::ConfigInput {
        base,
        platform: &spec.platform,
        created,
        settings: &settings,
        diff_ids: &diff_ids,
        history,
    })
    .map_err(BuildError::Config)?;
    if let Some(obj) = config.as_object_mut() {
        obj.remove("rootfs");
    }
    serde_json::to_vec(&config).map_err(|source| BuildError::Json {
        what: "the image config",
        source,
    })
}
