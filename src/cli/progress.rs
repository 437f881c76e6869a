//! Build progress on stderr, in the style of the push's (`registry.rs`):
//! on a terminal a live line per layer being written (spinner, input
//! bytes, elapsed time) redrawn in place; otherwise, and once each layer is
//! done, one plain line per layer as it finishes. Events come per layer
//! (`oci::build::BuildObserver`), so the cost is a few lines per layer and
//! a redraw at most 10 times a second, whatever the layer's size.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::common::{human, plural, short};
use super::output::{self, Progress};
use crate::oci::build::{BuildObserver, LayerOutcome};
use crate::plan::PlannedLayer;
use crate::plan::hash::HashReport;

/// How often live lines are redrawn.
const TICK: Duration = Duration::from_millis(100);

/// Progress of one build: implements the builder's observer.
pub struct BuildProgress {
    mode: Progress,
    bars: MultiProgress,
    /// Width of the layer ID column.
    width: AtomicUsize,
    /// Start time and live line of each layer being written, by plan index.
    open: Mutex<BTreeMap<usize, (Instant, Option<ProgressBar>)>>,
    /// Layers done: (reused, written).
    counts: Mutex<(usize, usize)>,
    start: Instant,
}

impl BuildProgress {
    /// Progress for a build, in the process's progress style.
    pub fn new() -> Self {
        let mode = output::progress();
        Self {
            mode,
            bars: MultiProgress::with_draw_target(if mode == Progress::Tty {
                ProgressDrawTarget::stderr_with_hz(10)
            } else {
                ProgressDrawTarget::hidden()
            }),
            width: AtomicUsize::new(0),
            open: Mutex::new(BTreeMap::new()),
            counts: Mutex::new((0, 0)),
            start: Instant::now(),
        }
    }

    /// Aligns the lines of `layers` (the plan's).
    pub fn layers(&self, layers: &[PlannedLayer]) {
        let w = layers.iter().map(|l| l.id.len()).max().unwrap_or(0);
        self.width.store(w, Ordering::Relaxed);
    }

    /// A live line saying `what` while `f` runs (on a terminal).
    fn spinner<T>(&self, what: String, f: impl FnOnce() -> T) -> T {
        if self.mode != Progress::Tty {
            return f();
        }
        let bar = ProgressBar::new_spinner()
            .with_style(
                ProgressStyle::with_template("{spinner} {msg}  {elapsed}")
                    .expect("static template"),
            )
            .with_message(what);
        let bar = self.bars.add(bar);
        bar.enable_steady_tick(TICK);
        let out = f();
        bar.finish_and_clear();
        self.bars.remove(&bar);
        out
    }

    /// Runs the input hashing `f` (planning) under a live line, then says
    /// what it read.
    pub fn hashing<T>(
        &self,
        f: impl FnOnce() -> T,
        report: impl Fn(&T) -> Option<HashReport>,
    ) -> T {
        let started = Instant::now();
        let out = self.spinner("hashing inputs".into(), f);
        if let Some(r) = report(&out) {
            let line = if r.hashed == 0 {
                format!("inputs unchanged: {} (stat cache)", plural(r.files, "file"))
            } else {
                format!(
                    "hashed {} ({}) in {}{}",
                    plural(r.hashed, "file"),
                    human(r.hashed_bytes),
                    secs(started.elapsed()),
                    if r.cached > 0 {
                        format!("; {} unchanged", plural(r.cached, "file"))
                    } else {
                        String::new()
                    }
                )
            };
            self.line(line);
        }
        out
    }

    /// Prints a line above the live ones.
    fn line(&self, line: String) {
        if self.mode == Progress::Quiet {
            return;
        }
        self.bars.suspend(|| output::note(line));
    }

    /// The closing line: how many layers were reused and written, and the time.
    pub fn finish(&self) {
        let (reused, written) = *self.counts.lock().expect("progress lock");
        self.line(format!(
            "{} ({reused} reused, {written} written) in {}",
            plural(reused + written, "layer"),
            secs(self.start.elapsed())
        ));
    }
}

impl BuildObserver for BuildProgress {
    fn writing(&self, index: usize, layer: &PlannedLayer) {
        let bar = (self.mode == Progress::Tty).then(|| {
            let bar = ProgressBar::new_spinner()
                .with_style(
                    ProgressStyle::with_template("{spinner} {prefix}  writing   {msg}  {elapsed}")
                        .expect("static template"),
                )
                .with_prefix(format!(
                    "{:<w$}",
                    layer.id,
                    w = self.width.load(Ordering::Relaxed)
                ))
                .with_message(inputs(layer));
            let bar = self.bars.add(bar);
            bar.enable_steady_tick(TICK);
            bar
        });
        self.open
            .lock()
            .expect("progress lock")
            .insert(index, (Instant::now(), bar));
    }

    fn done(&self, index: usize, layer: &PlannedLayer, outcome: &LayerOutcome) {
        let open = self.open.lock().expect("progress lock").remove(&index);
        let mut details = format!("from {}", inputs(layer));
        if let Some((started, bar)) = open {
            if let Some(bar) = bar {
                bar.finish_and_clear();
                self.bars.remove(&bar);
            }
            let took = started.elapsed();
            details.push_str(&format!(", {}", secs(took)));
            if took.as_secs_f64() > 0.0 {
                let rate = (layer.input_size as f64 / took.as_secs_f64()) as u64;
                details.push_str(&format!(", {}/s", human(rate)));
            }
        }
        {
            let mut c = self.counts.lock().expect("progress lock");
            if outcome.reused {
                c.0 += 1;
            } else {
                c.1 += 1;
            }
        }
        self.line(format!(
            "{:<w$}  {:<8}  {:>10}  {}  ({details})",
            layer.id,
            if outcome.reused { "reused" } else { "built" },
            human(outcome.layer.size),
            short(&outcome.layer.digest),
            w = self.width.load(Ordering::Relaxed),
        ));
    }
}

/// A layer's inputs: `1.00 GiB in 3 files`.
fn inputs(layer: &PlannedLayer) -> String {
    format!(
        "{} in {}",
        human(layer.input_size),
        plural(layer.input_files, "file")
    )
}

/// A duration in seconds: `12.1s`.
fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}
