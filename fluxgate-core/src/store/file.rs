use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{ApplyError, ApplyReport, PolicyId, PolicyStore};
use crate::policy::parse_policies;

/// Follows a policy file, or a folder of them, and applies each save to a [`PolicyStore`].
///
/// A folder source reads every `*.yaml`, `*.yml` and `*.json` file in it (not below it).
/// Changes are picked up from the operating system's file events (inotify on Linux), after a
/// short quiet period (the debounce, 10ms by default) so that a save written in several steps is
/// read once. A slower poll (every second by default) catches what events miss, such as
/// network file systems. A policy file that is a symbolic link into a folder whose links are
/// swapped (a Kubernetes ConfigMap volume: `policy.yaml -> ..data/policy.yaml`, `..data` renamed
/// over) is read again on the swap's events, as a folder source is. A save that does not parse or validate is reported (log, and the
/// store's [`status`](PolicyStore::status)) and ignored: the policies in force stay.
/// The file's policies are the store's base layer: a policy applied over one of them (the
/// admin API, Redis) is in force until it is deleted, then the file's version is again; a
/// changed save replaces it. A policy that disappears from the files is handled as
/// [the store's rules](super#removal-and-renaming) say: deleted (loudly) when its file was
/// removed from the folder, followed under its new name when its document in the same file now
/// names another (`metadata.name` or `namespace` changed), and kept in force until it is deleted
/// when its document was cut from a file that stays.
///
/// The watching is a future that the caller spawns ([`watch`](Self::watch)), or a task spawned
/// by [`spawn`](Self::spawn) that stops when its handle is dropped.
///
/// # Example
///
/// ```
/// use fluxgate_core::store::{FileSource, PolicyId, PolicyStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let dir = std::env::temp_dir().join(format!("fluxgate-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let file = dir.join("policy.yaml");
/// std::fs::write(&file, "apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata: {name: api}\nspec: {}\n").unwrap();
///
/// let store = PolicyStore::new();
/// let mut source = FileSource::new(&file, store.clone()).namespace("prod");
/// source.load().unwrap(); // refuse to start on an invalid policy
/// let _handle = source.spawn().unwrap(); // follow later saves
/// assert!(store.get(&PolicyId::new("prod", "api")).is_some());
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # }
/// ```
#[derive(Debug)]
#[must_use]
pub struct FileSource {
    path: PathBuf,
    store: PolicyStore,
    namespace: Option<String>,
    debounce: Duration,
    poll: Duration,
    /// The ids each file held at the last load, in document order.
    held: Vec<(PathBuf, Vec<PolicyId>)>,
    last_content: Option<u64>,
}

/// The task of a spawned [`FileSource`]; dropping it stops the watching.
#[must_use = "dropping the handle stops watching the policy file"]
#[derive(Debug)]
pub struct FileSourceHandle {
    task: JoinHandle<()>,
}

impl Drop for FileSourceHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FileSource {
    /// A source for `path`, a file or a folder, applying to `store`.
    pub fn new(path: impl Into<PathBuf>, store: PolicyStore) -> Self {
        Self {
            path: path.into(),
            store,
            namespace: None,
            debounce: Duration::from_millis(10),
            poll: Duration::from_secs(1),
            held: Vec::new(),
            last_content: None,
        }
    }

    /// The namespace given to documents that name none; documents naming another are refused.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// How long the files must stay quiet after an event before they are read (10ms by default).
    pub fn debounce(mut self, debounce: Duration) -> Self {
        self.debounce = debounce;
        self
    }

    /// How often the files are read even without an event (1s by default).
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll.max(Duration::from_millis(10));
        self
    }

    /// Reads the files now and applies them.
    ///
    /// Returns `Ok` with an empty report when the content has not changed since the last load.
    ///
    /// # Errors
    ///
    /// [`ApplyError::Read`] when a file cannot be read, or the store's error when a document is
    /// invalid. The store is left as it was.
    pub fn load(&mut self) -> Result<ApplyReport, ApplyError> {
        let contents = self.read().map_err(|e| self.store.reject(e))?;
        let hash = content_hash(&contents);
        if self.last_content == Some(hash) {
            return Ok(ApplyReport {
                generation: self.store.generation(),
                changes: Vec::new(),
            });
        }
        // Remembered before parsing, so that an unchanged broken file is reported once.
        self.last_content = Some(hash);
        let mut policies = Vec::new();
        let mut held = Vec::with_capacity(contents.len());
        for (file, bytes) in &contents {
            match parse_policies(bytes) {
                Ok(parsed) => {
                    let ids = parsed
                        .iter()
                        .filter_map(|p| PolicyId::of(p, self.namespace.as_deref()).ok())
                        .collect();
                    held.push((file.clone(), ids));
                    policies.extend(parsed);
                }
                Err(errors) => return Err(self.store.reject(ApplyError::Invalid(errors))),
            }
        }
        let mut report = self
            .store
            .apply_base(&policies, self.namespace.as_deref())?;
        let before = std::mem::replace(&mut self.held, held);
        for (file, ids) in &before {
            for departure in departures(&before, &self.held, file, ids) {
                let done = match departure {
                    Departure::Removed(id) => self.store.remove_base(id, file),
                    Departure::Renamed(from, to) => self.store.rename(from, to, file),
                    Departure::Retained(id) => {
                        self.store.retain(id, file);
                        continue;
                    }
                };
                report.generation = done.generation;
                report.changes.extend(done.changes);
            }
        }
        Ok(report)
    }

    /// The watching future: it applies every save until it is dropped. Spawn it.
    ///
    /// The file events are registered before this returns, so no save made after it is missed.
    ///
    /// # Errors
    ///
    /// [`ApplyError::Read`] when the operating system refuses to watch the path.
    pub fn watch(mut self) -> Result<impl Future<Output = ()> + Send + 'static, ApplyError> {
        let wake = Arc::new(Notify::new());
        let watcher = self.watcher(Arc::clone(&wake))?;
        Ok(async move {
            let _watcher = watcher;
            loop {
                tokio::select! {
                    () = wake.notified() => {}
                    () = tokio::time::sleep(self.poll) => {}
                }
                // Wait for the writes of one save to settle.
                while tokio::time::timeout(self.debounce, wake.notified())
                    .await
                    .is_ok()
                {}
                self.reload();
            }
        })
    }

    /// Spawns [`watch`](Self::watch) on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// As [`watch`](Self::watch).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as `tokio::spawn` does.
    pub fn spawn(self) -> Result<FileSourceHandle, ApplyError> {
        let future = self.watch()?;
        Ok(FileSourceHandle {
            task: tokio::spawn(future),
        })
    }

    fn reload(&mut self) {
        match self.load() {
            Ok(report) => {
                for change in report.changes.iter().filter(|c| c.is_change()) {
                    tracing::info!(path = %self.path.display(), generation = report.generation, "{change}");
                }
            }
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "policy file not applied");
            }
        }
    }

    fn watcher(&self, wake: Arc<Notify>) -> Result<notify::RecommendedWatcher, ApplyError> {
        let watched = if self.path.is_dir() {
            self.path.clone()
        } else {
            // Editors save by writing a new file and renaming it over the old one: watch the folder.
            match self.path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
                _ => PathBuf::from("."),
            }
        };
        let target = self.path.file_name().map(ToOwned::to_owned);
        // A symbolic link (a Kubernetes ConfigMap's `policy.yaml -> ..data/policy.yaml`) changes
        // when a link it goes through is swapped (`..data`): any event in the folder counts.
        let any_event = self.path.is_dir()
            || self
                .path
                .symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink());
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else {
                    wake.notify_one();
                    return;
                };
                let relevant = matches!(
                    event.kind,
                    EventKind::Create(_)
                        | EventKind::Modify(_)
                        | EventKind::Remove(_)
                        | EventKind::Any
                ) && (any_event
                    || event
                        .paths
                        .iter()
                        .any(|p| p.file_name() == target.as_deref()));
                if relevant {
                    wake.notify_one();
                }
            })
            .map_err(|e| self.read_error(&watched, &e))?;
        watcher
            .watch(&watched, RecursiveMode::NonRecursive)
            .map_err(|e| self.read_error(&watched, &e))?;
        Ok(watcher)
    }

    /// Reads every file of the source.
    fn read(&self) -> Result<Vec<(PathBuf, Vec<u8>)>, ApplyError> {
        self.files()?
            .into_iter()
            .map(|file| match std::fs::read(&file) {
                Ok(bytes) => Ok((file, bytes)),
                Err(e) => Err(self.read_error(&file, &e)),
            })
            .collect()
    }

    fn files(&self) -> Result<Vec<PathBuf>, ApplyError> {
        if !self.path.is_dir() {
            return Ok(vec![self.path.clone()]);
        }
        let entries = std::fs::read_dir(&self.path).map_err(|e| self.read_error(&self.path, &e))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.is_file() && is_policy_file(path))
            .collect();
        files.sort();
        Ok(files)
    }

    fn read_error(&self, path: &Path, error: &dyn std::fmt::Display) -> ApplyError {
        let _ = self;
        ApplyError::Read {
            path: path.to_path_buf(),
            message: error.to_string(),
        }
    }
}

fn content_hash(contents: &[(PathBuf, Vec<u8>)]) -> u64 {
    let mut hasher = DefaultHasher::new();
    contents.hash(&mut hasher);
    hasher.finish()
}

fn is_policy_file(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'));
    let ext = path.extension().and_then(|e| e.to_str());
    !hidden && matches!(ext, Some("yaml" | "yml" | "json"))
}

/// What happened to a policy that a file held at the last load and no file holds now.
enum Departure<'a> {
    /// Its file is gone.
    Removed(&'a PolicyId),
    /// Its file now holds another id in its place.
    Renamed(&'a PolicyId, &'a PolicyId),
    /// Its file stays, without it and without a new id to take its place.
    Retained(&'a PolicyId),
}

/// The departures of `file`, which held `ids` before: the ids no file holds now, paired in
/// document order with the ids new in the file.
fn departures<'a>(
    before: &'a [(PathBuf, Vec<PolicyId>)],
    now: &'a [(PathBuf, Vec<PolicyId>)],
    file: &Path,
    ids: &'a [PolicyId],
) -> Vec<Departure<'a>> {
    let holds = |files: &[(PathBuf, Vec<PolicyId>)], id: &PolicyId| {
        files.iter().any(|(_, ids)| ids.contains(id))
    };
    let gone = ids.iter().filter(|id| !holds(now, id));
    let Some((_, ids_now)) = now.iter().find(|(f, _)| f == file) else {
        return gone.map(Departure::Removed).collect();
    };
    let mut new = ids_now.iter().filter(|id| !holds(before, id));
    gone.map(|id| match new.next() {
        Some(to) => Departure::Renamed(id, to),
        None => Departure::Retained(id),
    })
    .collect()
}
