//! ExecOp: a process run on a root filesystem with extra mounts. Writable bind
//! mounts (the root included) are the op's outputs, numbered in mount order.

use super::{Common, Inputs, LlbError, Node, OpKind, Platform, SourceMap, SourceRange, State};
use crate::proto::pb;

/// How a cache mount is shared between concurrent builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum CacheSharing {
    /// Many writers at once (BuildKit's default).
    #[default]
    Shared,
    /// A second writer gets a fresh cache.
    Private,
    /// A second writer waits for the first.
    Locked,
}

/// The network an exec sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum NetMode {
    /// BuildKit's default sandboxed network.
    #[default]
    Sandbox,
    /// No network at all.
    None,
}

/// A secret exposed as an environment variable (cap `exec.secretenv`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecretEnv {
    /// The secret's ID in the session.
    pub(crate) id: String,
    /// The variable name.
    pub(crate) name: String,
    /// Run without it when the client has no such secret.
    pub(crate) optional: bool,
}

#[derive(Debug, Clone)]
enum MountKind {
    Bind {
        source: State,
        selector: String,
        readonly: bool,
        output: bool,
        no_content_cache: bool,
        by_content: bool,
    },
    Cache {
        id: String,
        sharing: CacheSharing,
    },
    Secret(FileOpts),
    Ssh(FileOpts),
}

/// A secret file or SSH socket: its ID and permission bits (owner 0:0,
/// required).
#[derive(Debug, Clone)]
struct FileOpts {
    id: String,
    mode: u32,
}

/// A filesystem mounted into an [`Exec`] at an absolute path.
#[derive(Debug, Clone)]
#[must_use]
pub(crate) struct Mount {
    dest: String,
    kind: MountKind,
}

impl Mount {
    /// `source` at `dest`, writable, its result an output of the exec.
    pub(crate) fn bind(dest: impl Into<String>, source: &State) -> Mount {
        Mount {
            dest: dest.into(),
            kind: MountKind::Bind {
                source: source.clone(),
                selector: String::new(),
                readonly: false,
                output: true,
                no_content_cache: false,
                by_content: false,
            },
        }
    }

    /// A persistent cache directory shared by builds that use the same `id`.
    pub(crate) fn cache(dest: impl Into<String>, id: impl Into<String>) -> Mount {
        Mount {
            dest: dest.into(),
            kind: MountKind::Cache {
                id: id.into(),
                sharing: CacheSharing::Shared,
            },
        }
    }

    /// The secret `id` as a file at `dest` (mode 0400, owner 0:0).
    pub(crate) fn secret(dest: impl Into<String>, id: impl Into<String>) -> Mount {
        Mount {
            dest: dest.into(),
            kind: MountKind::Secret(FileOpts::new(id.into(), 0o400)),
        }
    }

    /// The SSH agent `id` (`default` for the default agent) as a socket at
    /// `dest` (mode 0600, owner 0:0).
    pub(crate) fn ssh(dest: impl Into<String>, id: impl Into<String>) -> Mount {
        Mount {
            dest: dest.into(),
            kind: MountKind::Ssh(FileOpts::new(id.into(), 0o600)),
        }
    }

    /// Bind: mount read-only; it is then no output.
    pub(crate) fn readonly(mut self) -> Mount {
        if let MountKind::Bind {
            readonly, output, ..
        } = &mut self.kind
        {
            *readonly = true;
            *output = false;
        }
        self
    }

    /// Bind: writable, but the changes are thrown away (no output).
    pub(crate) fn discard_changes(mut self) -> Mount {
        if let MountKind::Bind { output, .. } = &mut self.kind {
            *output = false;
        }
        self
    }

    /// Bind: BuildKit keys the exec by the source's definition only, never
    /// by its content (`MountContentCache.OFF`, cap `exec.mount.cache.content`,
    /// which only engines that list the cap accept). BuildKit ≥ 0.12 keys a
    /// writable whole-source mount other than `/` by its content otherwise,
    /// which means hashing the whole source.
    pub(crate) fn no_content_cache(mut self) -> Mount {
        if let MountKind::Bind {
            no_content_cache, ..
        } = &mut self.kind
        {
            *no_content_cache = true;
        }
        self
    }

    /// Bind, read-only: BuildKit keys the exec by the mounted content
    /// (`MountContentCache.ON`, cap `exec.mount.cache.content`, BuildKit ≥
    /// 0.13), so another source with the same bytes there matches its cache.
    pub(crate) fn by_content(mut self) -> Mount {
        if let MountKind::Bind { by_content, .. } = &mut self.kind {
            *by_content = true;
        }
        self
    }

    /// Bind: mount only this path of the source.
    pub(crate) fn selector(mut self, path: impl Into<String>) -> Mount {
        if let MountKind::Bind { selector, .. } = &mut self.kind {
            *selector = path.into();
        }
        self
    }

    /// Cache: how concurrent builds share it.
    pub(crate) fn sharing(mut self, mode: CacheSharing) -> Mount {
        if let MountKind::Cache { sharing, .. } = &mut self.kind {
            *sharing = mode;
        }
        self
    }
}

impl FileOpts {
    fn new(id: String, mode: u32) -> FileOpts {
        FileOpts { id, mode }
    }
}

/// Options of an exec op: the process, its root filesystem and mounts.
#[derive(Debug, Clone)]
#[must_use = "call `build` to get the outputs"]
pub(crate) struct Exec {
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: String,
    user: String,
    remove_mount_stubs: bool,
    root: State,
    root_readonly: bool,
    root_by_content: bool,
    mounts: Vec<Mount>,
    network: NetMode,
    secret_env: Vec<SecretEnv>,
    platform: Option<Platform>,
    common: Common,
}

impl Exec {
    /// Runs `args` (no shell: `["sh", "-c", "…"]` for one) on `root`, which
    /// is mounted writable at `/` and is output 0.
    pub(crate) fn new<I, S>(root: &State, args: I) -> Exec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Exec {
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: "/".to_owned(),
            user: String::new(),
            remove_mount_stubs: false,
            root: root.clone(),
            root_readonly: false,
            root_by_content: false,
            mounts: Vec::new(),
            network: NetMode::Sandbox,
            secret_env: Vec::new(),
            platform: None,
            common: Common::default(),
        }
    }

    /// Replaces the process's argv.
    pub(crate) fn args<I, S>(mut self, args: I) -> Exec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Sets `name=value`, replacing an earlier value of `name` in place.
    pub(crate) fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Exec {
        let (name, value) = (name.into(), value.into());
        match self.env.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.env.push((name, value)),
        }
        self
    }

    /// The working directory (default `/`); the exec creates it.
    pub(crate) fn cwd(mut self, dir: impl Into<String>) -> Exec {
        self.cwd = dir.into();
        self
    }

    /// The user (`name`, `uid`, `uid:gid`); default: the image's (root).
    pub(crate) fn user(mut self, user: impl Into<String>) -> Exec {
        self.user = user.into();
        self
    }

    /// Removes the empty directories and files that mount points leave in
    /// the outputs, parents included (`removeMountStubsRecursive`, cap
    /// `exec.meta.removemountstubs.recursive`, BuildKit ≥ 0.11).
    pub(crate) fn remove_mount_stubs_recursive(mut self) -> Exec {
        self.remove_mount_stubs = true;
        self
    }

    /// Mounts the root filesystem read-only; it is then no output.
    pub(crate) fn readonly_root(mut self) -> Exec {
        self.root_readonly = true;
        self
    }

    /// Keys the root filesystem by its content (`contentCache = ON` on the
    /// root mount, cap `exec.mount.cache.content`); only for a read-only
    /// root.
    pub(crate) fn root_keyed_by_content(mut self) -> Exec {
        self.root_by_content = true;
        self
    }

    /// Adds a mount.
    pub(crate) fn mount(mut self, mount: Mount) -> Exec {
        self.mounts.push(mount);
        self
    }

    /// The network the process sees.
    pub(crate) fn network(mut self, mode: NetMode) -> Exec {
        self.network = mode;
        self
    }

    /// Exposes a secret as an environment variable.
    pub(crate) fn secret_env(mut self, secret: SecretEnv) -> Exec {
        self.secret_env.push(secret);
        self
    }

    /// The platform to run on.
    pub(crate) fn platform(mut self, platform: Platform) -> Exec {
        self.platform = Some(platform);
        self
    }

    /// The name shown in progress output.
    pub(crate) fn custom_name(mut self, name: impl Into<String>) -> Exec {
        self.common.custom_name(name.into());
        self
    }

    /// Points the op at `ranges` of `map`.
    pub(crate) fn location(mut self, map: &SourceMap, ranges: &[SourceRange]) -> Exec {
        self.common.location(map, ranges.to_vec());
        self
    }

    /// Encodes the op. Mounts are ordered by target (the root first), so the
    /// order they were added in does not change the digest.
    pub(crate) fn build(self) -> Result<ExecOutputs, LlbError> {
        if self.args.is_empty() {
            return Err(LlbError::EmptyArgs);
        }
        let mut root = Mount::bind("/", &self.root);
        if self.root_readonly {
            root = root.readonly();
        }
        let mut mounts = self.mounts;
        for m in &mounts {
            if !m.dest.starts_with('/') {
                return Err(LlbError::RelativeMountTarget {
                    dest: m.dest.clone(),
                });
            }
        }
        mounts.push(root);
        mounts.sort_by(|a, b| a.dest.cmp(&b.dest));
        if let Some(w) = mounts.windows(2).find(|w| w[0].dest == w[1].dest) {
            return Err(LlbError::DuplicateMount {
                dest: w[0].dest.clone(),
            });
        }

        let mut meta = self.common.meta;
        meta.cap("exec.meta.base");
        let mut inputs = Inputs::default();
        let mut pb_mounts = Vec::with_capacity(mounts.len());
        let mut outputs = Vec::new();
        for m in &mounts {
            let mut pm = pb::Mount {
                input: -1,
                dest: m.dest.clone(),
                output: -1,
                ..Default::default()
            };
            match &m.kind {
                MountKind::Bind {
                    source,
                    selector,
                    readonly,
                    output,
                    no_content_cache,
                    by_content,
                } => {
                    pm.input = inputs.index_of(source);
                    if *no_content_cache {
                        pm.content_cache = pb::MountContentCache::Off as i32;
                        meta.cap("exec.mount.cache.content");
                    }
                    if *by_content && *readonly {
                        pm.content_cache = pb::MountContentCache::On as i32;
                        meta.cap("exec.mount.cache.content");
                    }
                    if self.root_by_content && m.dest == "/" && *readonly {
                        pm.content_cache = pb::MountContentCache::On as i32;
                        meta.cap("exec.mount.cache.content");
                    }
                    pm.selector.clone_from(selector);
                    pm.readonly = *readonly;
                    pm.mount_type = pb::MountType::Bind as i32;
                    if *output {
                        pm.output = outputs.len() as i64;
                        outputs.push(m.dest.clone());
                    } else if !*readonly {
                        meta.cap("exec.mount.bind.readwrite-nooutput");
                    }
                    if !source.is_scratch() {
                        meta.cap("exec.mount.bind");
                    }
                    if !selector.is_empty() {
                        meta.cap("exec.mount.selector");
                    }
                }
                MountKind::Cache { id, sharing } => {
                    pm.mount_type = pb::MountType::Cache as i32;
                    pm.cache_opt = Some(pb::CacheOpt {
                        id: id.clone(),
                        sharing: match sharing {
                            CacheSharing::Shared => pb::CacheSharingOpt::Shared,
                            CacheSharing::Private => pb::CacheSharingOpt::Private,
                            CacheSharing::Locked => pb::CacheSharingOpt::Locked,
                        } as i32,
                    });
                    meta.cap("exec.mount.cache");
                    meta.cap("exec.mount.cache.sharing");
                }
                MountKind::Secret(o) => {
                    pm.mount_type = pb::MountType::Secret as i32;
                    pm.secret_opt = Some(pb::SecretOpt {
                        id: o.id.clone(),
                        uid: 0,
                        gid: 0,
                        mode: o.mode,
                        optional: false,
                    });
                    meta.cap("exec.mount.secret");
                }
                MountKind::Ssh(o) => {
                    pm.mount_type = pb::MountType::Ssh as i32;
                    pm.ssh_opt = Some(pb::SshOpt {
                        id: o.id.clone(),
                        uid: 0,
                        gid: 0,
                        mode: o.mode,
                        optional: false,
                    });
                    meta.cap("exec.mount.ssh");
                }
            }
            pb_mounts.push(pm);
        }
        if !self.secret_env.is_empty() {
            meta.cap("exec.mount.secret");
            meta.cap("exec.secretenv");
        }
        // No cap for `removeMountStubsRecursive`: BuildKit never registers
        // `exec.meta.removemountstubs.recursive` (a daemon rejects an op that
        // lists it), and engines before 0.11 ignore the field.
        let network = match self.network {
            NetMode::Sandbox => pb::NetMode::Unset,
            NetMode::None => pb::NetMode::None,
        };
        if network != pb::NetMode::Unset {
            meta.cap("exec.meta.network");
        }

        let exec = pb::ExecOp {
            meta: Some(pb::Meta {
                args: self.args,
                env: self.env.iter().map(|(n, v)| format!("{n}={v}")).collect(),
                cwd: self.cwd,
                user: self.user,
                extra_hosts: Vec::new(),
                hostname: String::new(),
                remove_mount_stubs_recursive: self.remove_mount_stubs,
            }),
            mounts: pb_mounts,
            network: network as i32,
            security: pb::SecurityMode::Sandbox as i32,
            secretenv: self
                .secret_env
                .into_iter()
                .map(|s| pb::SecretEnv {
                    id: s.id,
                    name: s.name,
                    optional: s.optional,
                })
                .collect(),
        };
        let op = pb::Op {
            op: Some(pb::op::Op::Exec(exec)),
            platform: self.platform.as_ref().map(super::platform_to_proto),
            ..Default::default()
        };
        let node = Node::build(op, inputs.outputs, OpKind::Exec, meta);
        Ok(ExecOutputs { node, outputs })
    }
}

/// The outputs of a built [`Exec`]: one state per writable bind mount.
#[derive(Debug, Clone)]
pub(crate) struct ExecOutputs {
    node: std::sync::Arc<Node>,
    /// Targets of the mounts with outputs, in output-index order.
    outputs: Vec<String>,
}

impl ExecOutputs {
    /// The root filesystem after the process ran, or `None` for a read-only
    /// root.
    pub(crate) fn root(&self) -> Option<State> {
        self.output("/")
    }

    /// The writable bind mount at `dest` after the process ran, or `None`
    /// when no mount there has an output.
    pub(crate) fn output(&self, dest: &str) -> Option<State> {
        let index = self.outputs.iter().position(|d| d == dest)?;
        Some(State::from_output(self.node.clone(), index as u32))
    }

    /// The digest of the exec op.
    #[cfg(test)]
    pub(crate) fn digest(&self) -> &str {
        &self.node.digest
    }
}
