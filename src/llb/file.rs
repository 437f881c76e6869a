//! FileOp: a chain of file actions (copy, mkdir, mkfile, rm) on a base state,
//! each acting on the result of the one before.
//!
//! Protobuf 3 cannot tell an unset integer from zero, and BuildKit reads a
//! mode of 0 as `chmod 0000` and a timestamp of 0 as 1970: an unset mode or
//! timestamp is therefore written as −1.

use super::{Common, Inputs, Node, OpKind, SourceMap, SourceRange, State};
use crate::proto::pb;

/// A user or group, by number or by name (looked up in the base's
/// `/etc/passwd` and `/etc/group`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    /// A numeric ID.
    Id(u32),
    /// A name.
    Name(String),
}

/// The owner given to created files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The user.
    pub user: UserRef,
    /// The group; `None` keeps BuildKit's default (the user's group).
    pub group: Option<UserRef>,
}

impl Owner {
    /// Numeric `uid:gid`.
    pub fn ids(uid: u32, gid: u32) -> Owner {
        Owner {
            user: UserRef::Id(uid),
            group: Some(UserRef::Id(gid)),
        }
    }

    fn to_proto(&self, base: i64) -> pb::ChownOpt {
        let user = |u: &UserRef| pb::UserOpt {
            user: Some(match u {
                UserRef::Id(id) => pb::user_opt::User::ById(*id),
                UserRef::Name(name) => pb::user_opt::User::ByName(pb::NamedUserOpt {
                    name: name.clone(),
                    input: base,
                }),
            }),
        };
        pb::ChownOpt {
            user: Some(user(&self.user)),
            group: self.group.as_ref().map(user),
        }
    }
}

/// Seconds since the epoch as BuildKit's nanoseconds, or −1 for unset.
fn timestamp_nanos(secs: Option<i64>) -> i64 {
    secs.map_or(-1, |s| s.saturating_mul(1_000_000_000))
}

/// A path made absolute (relative paths are taken from `/`).
fn absolute(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

/// Copies `src` of another state to `dest`.
#[derive(Debug, Clone)]
#[must_use]
pub struct Copy {
    source: State,
    src: String,
    dest: String,
    owner: Option<Owner>,
    mode: Option<u32>,
    timestamp: Option<i64>,
    include_patterns: Vec<String>,
    exclude_patterns: Vec<String>,
    create_dest_path: bool,
    allow_wildcard: bool,
    allow_empty_wildcard: bool,
    dir_copy_contents: bool,
    follow_symlink: bool,
}

impl Copy {
    /// Copies `src` of `source` to `dest` of the base.
    pub fn new(source: &State, src: impl AsRef<str>, dest: impl AsRef<str>) -> Copy {
        Copy {
            source: source.clone(),
            src: absolute(src.as_ref()),
            dest: absolute(dest.as_ref()),
            owner: None,
            mode: None,
            timestamp: None,
            include_patterns: Vec::new(),
            exclude_patterns: Vec::new(),
            create_dest_path: false,
            allow_wildcard: false,
            allow_empty_wildcard: false,
            dir_copy_contents: false,
            follow_symlink: false,
        }
    }

    /// Owner of every copied entry (default: kept from the source).
    pub fn owner(mut self, owner: Owner) -> Copy {
        self.owner = Some(owner);
        self
    }

    /// Permission bits of every copied entry (default: kept).
    pub fn mode(mut self, mode: u32) -> Copy {
        self.mode = Some(mode);
        self
    }

    /// Modification time of every copied entry, in seconds since the epoch
    /// (default: kept from the source).
    pub fn timestamp(mut self, secs: i64) -> Copy {
        self.timestamp = Some(secs);
        self
    }

    /// Copies only paths matching these patterns (cap
    /// `file.copy.includeexcludepatterns`, BuildKit ≥ 0.9).
    pub fn include_patterns<I, S>(mut self, patterns: I) -> Copy
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.include_patterns = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// Skips paths matching these patterns (same cap as includes).
    pub fn exclude_patterns<I, S>(mut self, patterns: I) -> Copy
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.exclude_patterns = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// Creates the missing parents of `dest`.
    pub fn create_dest_path(mut self) -> Copy {
        self.create_dest_path = true;
        self
    }

    /// Treats `src` as a wildcard pattern; with `allow_empty`, no match is
    /// not an error.
    pub fn allow_wildcard(mut self, allow_empty: bool) -> Copy {
        self.allow_wildcard = true;
        self.allow_empty_wildcard = allow_empty;
        self
    }

    /// When `src` is a directory, copies its contents rather than itself.
    pub fn dir_copy_contents(mut self) -> Copy {
        self.dir_copy_contents = true;
        self
    }

    /// Follows a symlink at `src`.
    pub fn follow_symlink(mut self) -> Copy {
        self.follow_symlink = true;
        self
    }
}

/// Creates a directory.
#[derive(Debug, Clone)]
#[must_use]
pub struct Mkdir {
    path: String,
    mode: u32,
    make_parents: bool,
    owner: Option<Owner>,
    timestamp: Option<i64>,
}

impl Mkdir {
    /// Creates `path` with permission bits `mode`.
    pub fn new(path: impl AsRef<str>, mode: u32) -> Mkdir {
        Mkdir {
            path: absolute(path.as_ref()),
            mode,
            make_parents: false,
            owner: None,
            timestamp: None,
        }
    }

    /// Also creates missing parents.
    pub fn make_parents(mut self) -> Mkdir {
        self.make_parents = true;
        self
    }

    /// The owner (default 0:0).
    pub fn owner(mut self, owner: Owner) -> Mkdir {
        self.owner = Some(owner);
        self
    }

    /// Modification time in seconds since the epoch (default: now).
    pub fn timestamp(mut self, secs: i64) -> Mkdir {
        self.timestamp = Some(secs);
        self
    }
}

/// Creates a file with the given content.
#[derive(Debug, Clone)]
#[must_use]
pub struct Mkfile {
    path: String,
    mode: u32,
    data: Vec<u8>,
    owner: Option<Owner>,
    timestamp: Option<i64>,
}

impl Mkfile {
    /// Creates `path` with permission bits `mode` and content `data`.
    pub fn new(path: impl AsRef<str>, mode: u32, data: impl Into<Vec<u8>>) -> Mkfile {
        Mkfile {
            path: absolute(path.as_ref()),
            mode,
            data: data.into(),
            owner: None,
            timestamp: None,
        }
    }

    /// The owner (default 0:0).
    pub fn owner(mut self, owner: Owner) -> Mkfile {
        self.owner = Some(owner);
        self
    }

    /// Modification time in seconds since the epoch (default: now).
    pub fn timestamp(mut self, secs: i64) -> Mkfile {
        self.timestamp = Some(secs);
        self
    }
}

/// Removes a path.
#[derive(Debug, Clone)]
#[must_use]
pub struct Rm {
    path: String,
    allow_not_found: bool,
    allow_wildcard: bool,
}

impl Rm {
    /// Removes `path`; a missing path is an error unless allowed.
    pub fn new(path: impl AsRef<str>) -> Rm {
        Rm {
            path: absolute(path.as_ref()),
            allow_not_found: false,
            allow_wildcard: false,
        }
    }

    /// A missing path is not an error.
    pub fn allow_not_found(mut self) -> Rm {
        self.allow_not_found = true;
        self
    }

    /// Treats the path as a wildcard pattern.
    pub fn allow_wildcard(mut self) -> Rm {
        self.allow_wildcard = true;
        self
    }
}

/// One action of a [`FileOp`].
#[derive(Debug, Clone)]
pub enum FileAction {
    /// Copy from another state.
    Copy(Copy),
    /// Create a directory.
    Mkdir(Mkdir),
    /// Create a file.
    Mkfile(Mkfile),
    /// Remove a path.
    Rm(Rm),
}

impl From<Copy> for FileAction {
    fn from(a: Copy) -> FileAction {
        FileAction::Copy(a)
    }
}

impl From<Mkdir> for FileAction {
    fn from(a: Mkdir) -> FileAction {
        FileAction::Mkdir(a)
    }
}

impl From<Mkfile> for FileAction {
    fn from(a: Mkfile) -> FileAction {
        FileAction::Mkfile(a)
    }
}

impl From<Rm> for FileAction {
    fn from(a: Rm) -> FileAction {
        FileAction::Rm(a)
    }
}

/// A chain of file actions, applied in order to a base by [`State::file`].
#[derive(Debug, Clone, Default)]
#[must_use = "apply it with `State::file`"]
pub struct FileOp {
    actions: Vec<FileAction>,
    common: Common,
}

impl FileOp {
    /// No actions yet.
    pub fn new() -> FileOp {
        FileOp::default()
    }

    /// Appends an action.
    pub fn action(mut self, action: impl Into<FileAction>) -> FileOp {
        self.actions.push(action.into());
        self
    }

    /// The name shown in progress output.
    pub fn custom_name(mut self, name: impl Into<String>) -> FileOp {
        self.common.custom_name(name.into());
        self
    }

    /// Points the op at `ranges` of `map`.
    pub fn location(mut self, map: &SourceMap, ranges: &[SourceRange]) -> FileOp {
        self.common.location(map, ranges.to_vec());
        self
    }
}

impl State {
    /// Applies the actions of `op` to this state, in order. With no actions
    /// this state is returned unchanged.
    pub fn file(&self, op: FileOp) -> State {
        if op.actions.is_empty() {
            return self.clone();
        }
        let mut meta = op.common.meta;
        meta.cap("file.base");
        let mut inputs = Inputs::default();
        // Every input is registered before action indexes are computed,
        // because an action result's index is `len(inputs) + action`.
        let base = inputs.index_of(self);
        let secondary: Vec<i64> = op
            .actions
            .iter()
            .map(|a| match a {
                FileAction::Copy(c) => inputs.index_of(&c.source),
                _ => -1,
            })
            .collect();
        let n_inputs = inputs.outputs.len() as i64;
        let last = op.actions.len() - 1;
        let mut actions = Vec::with_capacity(op.actions.len());
        for (i, (action, secondary_input)) in op.actions.iter().zip(secondary).enumerate() {
            let input = if i == 0 {
                base
            } else {
                n_inputs + i as i64 - 1
            };
            let action = match action {
                FileAction::Copy(c) => {
                    if !c.include_patterns.is_empty() || !c.exclude_patterns.is_empty() {
                        meta.cap("file.copy.includeexcludepatterns");
                    }
                    pb::file_action::Action::Copy(pb::FileActionCopy {
                        src: c.src.clone(),
                        dest: c.dest.clone(),
                        owner: c.owner.as_ref().map(|o| o.to_proto(base)),
                        mode: c.mode.map_or(-1, |m| m as i32),
                        follow_symlink: c.follow_symlink,
                        dir_copy_contents: c.dir_copy_contents,
                        attempt_unpack_docker_compatibility: false,
                        create_dest_path: c.create_dest_path,
                        allow_wildcard: c.allow_wildcard,
                        allow_empty_wildcard: c.allow_empty_wildcard,
                        timestamp: timestamp_nanos(c.timestamp),
                        include_patterns: c.include_patterns.clone(),
                        exclude_patterns: c.exclude_patterns.clone(),
                        always_replace_existing_dest_paths: false,
                        mode_str: String::new(),
                    })
                }
                FileAction::Mkdir(m) => pb::file_action::Action::Mkdir(pb::FileActionMkDir {
                    path: m.path.clone(),
                    mode: m.mode as i32,
                    make_parents: m.make_parents,
                    owner: m.owner.as_ref().map(|o| o.to_proto(base)),
                    timestamp: timestamp_nanos(m.timestamp),
                }),
                FileAction::Mkfile(m) => pb::file_action::Action::Mkfile(pb::FileActionMkFile {
                    path: m.path.clone(),
                    mode: m.mode as i32,
                    data: m.data.clone(),
                    owner: m.owner.as_ref().map(|o| o.to_proto(base)),
                    timestamp: timestamp_nanos(m.timestamp),
                }),
                FileAction::Rm(r) => pb::file_action::Action::Rm(pb::FileActionRm {
                    path: r.path.clone(),
                    allow_not_found: r.allow_not_found,
                    allow_wildcard: r.allow_wildcard,
                }),
            };
            actions.push(pb::FileAction {
                input,
                secondary_input,
                output: if i == last { 0 } else { -1 },
                action: Some(action),
            });
        }
        let op = pb::Op {
            op: Some(pb::op::Op::File(pb::FileOp { actions })),
            ..Default::default()
        };
        State::from_output(Node::build(op, inputs.outputs, OpKind::File, meta), 0)
    }

    /// Copies onto this state: a one-action [`FileOp`].
    pub fn copy(&self, copy: Copy) -> State {
        self.file(FileOp::new().action(copy))
    }

    /// Creates a directory in this state: a one-action [`FileOp`].
    pub fn mkdir(&self, mkdir: Mkdir) -> State {
        self.file(FileOp::new().action(mkdir))
    }

    /// Creates a file in this state: a one-action [`FileOp`].
    pub fn mkfile(&self, mkfile: Mkfile) -> State {
        self.file(FileOp::new().action(mkfile))
    }

    /// Removes a path from this state: a one-action [`FileOp`].
    pub fn rm(&self, rm: Rm) -> State {
        self.file(FileOp::new().action(rm))
    }
}
