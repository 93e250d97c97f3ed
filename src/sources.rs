//! Package sources for a run: fetching and verifying them, extracting and
//! patching them once into `build/src/` (shared by every target, keyed by
//! the tarball and the patch set), local `--source` overrides (said loudly
//! and recorded as unverified), and the private copies packages build in.

use crate::engine::ScriptError;
use crate::package::Package;
use crate::stage::{Ctx, PrimResult, Run};
use camino::{Utf8Path, Utf8PathBuf};
use std::sync::Arc;

impl Run {
    /// What identifies a package's source without fetching: its first
    /// origin's checksum, or the override's path, size and mtime.
    pub fn source_identity(&self, name: &str) -> Result<Option<String>, ScriptError> {
        if let Some(p) = self.overrides.get(name) {
            return Ok(Some(crate::manifest::local_source_identity(p)));
        }
        let pkg = self.package(name)?;
        Ok(Some(pinned_identity(&pkg)))
    }

    /// Say once, loudly, that a package's source is a local override.
    pub fn warn_override(&self, name: &str, path: &Utf8Path) {
        let mut w = self.warned.lock().unwrap();
        if !w.iter().any(|n| n == name) {
            eprintln!(
                "warning: `{name}` comes from `{path}` (--source), which nobody verified; the manifest records it as unverified"
            );
            w.push(name.to_string());
        }
    }
}

/// What identifies a verified package source in a manifest: its version
/// and the checksums of its origins.
fn pinned_identity(pkg: &Package) -> String {
    let sums: Vec<String> = pkg.origins.iter().map(|o| o.expected.short()).collect();
    format!("{}:{}", pkg.version, sums.join(","))
}

impl Ctx {
    /// Fetch and verify packages, `jobs` at a time.
    pub fn fetch(&self, names: &[String]) -> PrimResult<()> {
        let mut pkgs = Vec::new();
        for n in names {
            match self.run.package(n) {
                Ok(p) => pkgs.push(p),
                Err(e) => {
                    self.run.keep_failure(e);
                    return Err(format!("package `{n}` could not be loaded"));
                }
            }
        }
        fetch_packages(&self.run, &pkgs, self.frame.per_host)
    }

    /// The verified, extracted and patched source tree of the current
    /// package, shared by every build of it (treat it as read-only: build
    /// out of tree, or use `ctx.setup()` for a private copy).
    pub fn source(&self) -> PrimResult<Utf8PathBuf> {
        let pkg = self.current_package()?;
        self.source_of_package(&pkg)
    }

    /// The same for any package, by name (for stages that only read a
    /// source, such as `rhbuild miniconfig`).
    pub fn source_of(&self, name: &str) -> PrimResult<Utf8PathBuf> {
        let pkg = match self.run.package(name) {
            Ok(p) => p,
            Err(e) => {
                self.run.keep_failure(e);
                return Err(format!("package `{name}` could not be loaded"));
            }
        };
        self.source_of_package(&pkg)
    }

    fn source_of_package(&self, pkg: &Package) -> PrimResult<Utf8PathBuf> {
        let run = &self.run;
        if let Some(p) = run.overrides.get(&pkg.name).cloned() {
            run.warn_override(&pkg.name, &p);
            self.frame.unverified.lock().unwrap().push(pkg.name.clone());
            let id = run
                .source_identity(&pkg.name)
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
            self.frame
                .inputs
                .lock()
                .unwrap()
                .sources
                .insert(pkg.name.clone(), id.clone());
            if p.is_dir() {
                return Ok(p);
            }
            let key = crate::checksum::sha256_bytes(id.as_bytes());
            return self.unpacked(pkg, &p, None, &key);
        }
        let fetched = fetch_packages(run, std::slice::from_ref(pkg), self.frame.per_host)
            .and_then(|_| {
                run.cache
                    .cached(&pkg.spec())
                    .ok_or_else(|| format!("`{}` vanished from the cache", pkg.name))
            })?;
        let origin = &pkg.origins[fetched.origin];
        let id = pinned_identity(pkg);
        self.frame
            .inputs
            .lock()
            .unwrap()
            .sources
            .insert(pkg.name.clone(), id);
        let inner = pkg.inner.get(fetched.origin).cloned().flatten();
        let key_text = format!(
            "{}:{:?}:{:?}",
            fetched.path.file_name().unwrap_or(""),
            origin.expected,
            inner
        );
        self.unpacked(
            pkg,
            &fetched.path,
            inner.as_deref(),
            &crate::checksum::sha256_bytes(key_text.as_bytes()),
        )
    }

    /// The patches applied to a package's source, in order: its own, then
    /// the user's (MY_PATCH_DIR/<name>).
    fn patches_of(&self, pkg: &Package) -> PrimResult<Vec<Utf8PathBuf>> {
        let root = &self.run.engine.project.root;
        let mut patches =
            crate::patch::list_patches(&pkg.patch_dir(root)).map_err(|e| e.to_string())?;
        if let Some(user) = self
            .run
            .settings
            .get("MY_PATCH_DIR")
            .filter(|s| !s.is_empty())
        {
            self.record_setting("MY_PATCH_DIR", Some(user));
            patches.extend(
                crate::patch::list_patches(&Utf8PathBuf::from(user).join(&pkg.name))
                    .map_err(|e| e.to_string())?,
            );
        }
        Ok(patches)
    }

    /// Where a package's source came from, for an account of an image (an
    /// SBOM, legal-info): its declarations (`ctx.package_info`) and
    /// `origin` (the URL or Debian source package of the origin whose
    /// checksum the cached file matched, or `local PATH` for a --source
    /// override), `file` (that file), `sha256` (its checksum, computed),
    /// `patches` (`#{ file, sha256 }` each, in the order applied),
    /// `tree` (the extracted, patched source) and `verified`.
    pub fn source_record(&self, name: &str) -> PrimResult<rhai::Map> {
        let mut m = self.package_info(name)?;
        let pkg = self.run.package(name).map_err(|e| e.to_string())?;
        let tree = self.source_of_package(&pkg)?;
        let (origin, file, verified) = match self.run.overrides.get(name) {
            Some(p) => (format!("local {p}"), p.clone(), false),
            None => {
                let fetched = self
                    .run
                    .cache
                    .cached(&pkg.spec())
                    .ok_or_else(|| format!("`{name}` vanished from the cache"))?;
                let origin = match &pkg.origins[fetched.origin].kind {
                    crate::fetch::OriginKind::Url(u) => u.clone(),
                    crate::fetch::OriginKind::Debian { package, file } => {
                        format!("debian source package {package}: {file}")
                    }
                };
                (origin, fetched.path, true)
            }
        };
        let sha256 = if file.is_file() {
            crate::checksum::sha256_file(&file).map_err(|e| format!("cannot read `{file}`: {e}"))?
        } else {
            String::new()
        };
        let mut patches = rhai::Array::new();
        for p in self.patches_of(&pkg)? {
            let bytes = std::fs::read(&p).map_err(|e| format!("cannot read patch `{p}`: {e}"))?;
            let mut pm = rhai::Map::new();
            pm.insert("file".into(), p.to_string().into());
            pm.insert(
                "sha256".into(),
                crate::checksum::sha256_bytes(&bytes).into(),
            );
            patches.push(pm.into());
        }
        m.insert("origin".into(), origin.into());
        m.insert("file".into(), file.to_string().into());
        m.insert("sha256".into(), sha256.into());
        m.insert("patches".into(), patches.into());
        m.insert("tree".into(), tree.to_string().into());
        m.insert("verified".into(), verified.into());
        Ok(m)
    }

    /// Extract and patch `archive` into `build/src/<name>-<version>-<key>`,
    /// where the key covers the tarball and the patch set. With `inner`, the
    /// tree comes from the tarball at that path inside `archive` (extracted
    /// first, next to the tree, and removed afterwards).
    fn unpacked(
        &self,
        pkg: &Package,
        archive: &Utf8Path,
        inner: Option<&str>,
        key: &str,
    ) -> PrimResult<Utf8PathBuf> {
        let root = &self.run.engine.project.root;
        let patches = self.patches_of(pkg)?;
        let mut key_text = key.to_string();
        for p in &patches {
            let bytes = std::fs::read(p).map_err(|e| format!("cannot read patch `{p}`: {e}"))?;
            let h = crate::checksum::sha256_bytes(&bytes);
            key_text.push_str(&h);
            if let Ok(rel) = p.strip_prefix(root) {
                self.frame
                    .inputs
                    .lock()
                    .unwrap()
                    .files
                    .insert(rel.to_string(), h);
            } else {
                self.frame
                    .inputs
                    .lock()
                    .unwrap()
                    .files
                    .insert(p.to_string(), h);
            }
        }
        let key = crate::checksum::sha256_bytes(key_text.as_bytes());
        let build = self.run.policy.build();
        let dest_rel =
            Utf8PathBuf::from(format!("src/{}-{}-{}", pkg.name, pkg.version, &key[..12]));
        let dest = build.join(&dest_rel);
        if build.kind(&dest_rel).map_err(|e| e.to_string())?
            == Some(rustix::fs::FileType::Directory)
        {
            return Ok(dest);
        }
        build
            .mkdir_all(Utf8Path::new("src"))
            .map_err(|e| format!("cannot create `{}`: {e}", build.join(Utf8Path::new("src"))))?;
        let tmp = Utf8PathBuf::from(format!(
            "src/.{}-{}.part-{}",
            pkg.name,
            &key[..12],
            std::process::id()
        ));
        build
            .remove_all(&tmp, None)
            .and_then(|_| build.mkdir(&tmp, 0o755))
            .map_err(|e| format!("cannot create `{}`: {e}", build.join(&tmp)))?;
        let tree = tmp.join("tree");
        let options = self.run.extract_options(self.frame.per_host);
        let result = match inner {
            None => crate::extract::extract_in(archive, build, &tree, &options).map_err(|e| format!("{e}")),
            Some(inner) => {
                let outer = tmp.join("outer");
                crate::extract::extract_in(archive, build, &outer, &options)
                    .map_err(|e| format!("{e}"))
                    .and_then(|_| {
                        let file = build
                            .real_path(&outer.join(inner))
                            .ok()
                            .filter(|p| p.is_file())
                            .ok_or_else(|| format!(
                                "`{archive}` holds no `{inner}` (package `{}`'s `inner`): check the path against `tar tf {archive}`",
                                pkg.name
                            ))?;
                        crate::extract::extract_in(&file, build, &tree, &options).map_err(|e| format!("{e}"))
                    })
            }
        }
        .and_then(|_| {
            let log_rel = self.run.build_rel(&self.frame.log)?;
            let mut log = build
                .append_file(&log_rel)
                .map_err(|e| format!("cannot open the log `{}`: {e}", self.frame.log))?;
            crate::patch::apply_patches_in(
                &build.join(&tree),
                &patches,
                &mut log,
                &self.frame.log,
                Some(&self.run.source_sandbox),
            )
            .map_err(|e| format!("{e}"))
        })
        .and_then(|_| match build.rename_noreplace(&tree, &dest_rel) {
            Ok(()) => Ok(()),
            // Another run (build-all's next target) got there first
            // with the same tarball and patches: use its tree.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(format!("cannot rename `{}` to `{dest}`: {e}", build.join(&tree))),
        });
        let _ = build.remove_all(&tmp, None);
        result.map(|_| dest)
    }

    /// A fresh private copy of the current package's source, under
    /// `build/<arch>/work/<package>`.
    pub fn setup(&self) -> PrimResult<Utf8PathBuf> {
        let src = self.source()?;
        let pkg = self.current_package()?;
        let work = self.fresh_work_dir(&pkg.name)?;
        let build = self.run.policy.build();
        let rel = self.run.build_rel(&work)?;
        // The source is the cached tree (beneath the build directory) or a
        // `--source` directory, copied without following its links.
        let copied = match build.relative(&src) {
            Some(src_rel) => build.copy_from(build, &src_rel, &rel, Some(&self.run.interrupt)),
            None => crate::confine::Root::open(&src).and_then(|from| {
                build.copy_from(&from, Utf8Path::new(""), &rel, Some(&self.run.interrupt))
            }),
        };
        copied.map_err(|e| format!("cannot copy `{src}` to `{work}`: {e}"))?;
        Ok(work)
    }

    /// A fresh empty directory `build/<arch>/work/<name>` (`build/all/work`
    /// for a per-host stage).
    pub fn work_dir(&self, name: &str) -> PrimResult<Utf8PathBuf> {
        if name.contains('/') || name.starts_with('.') || name.is_empty() {
            return Err(format!("work directory name `{name}` must be a plain name"));
        }
        self.fresh_work_dir(name)
    }

    fn fresh_work_dir(&self, name: &str) -> PrimResult<Utf8PathBuf> {
        let work = self.frame.home.join("work").join(name);
        let build = self.run.policy.build();
        let rel = self.run.build_rel(&work)?;
        build
            .remove_all(&rel, Some(&self.run.interrupt))
            .map_err(|e| format!("cannot remove `{work}`: {e}"))?;
        build
            .mkdir_all(&rel)
            .map_err(|e| format!("cannot create `{work}`: {e}"))?;
        Ok(work)
    }
}

/// Fetch packages in parallel, at most `jobs` (and at most 4) at a time,
/// with the download settings a per-host stage or a target's sees.
/// Overridden packages are not fetched; they are logged as unverified.
pub fn fetch_packages(run: &Arc<Run>, pkgs: &[Package], per_host: bool) -> PrimResult<()> {
    let todo: Vec<&Package> = pkgs
        .iter()
        .filter(|p| match run.overrides.get(&p.name) {
            Some(path) => {
                run.warn_override(&p.name, path);
                false
            }
            None => true,
        })
        .collect();
    let specs: Vec<_> = todo.iter().map(|p| p.spec()).collect();
    let say = |name: &str, line: &str| {
        if !line.ends_with("(cached)") {
            run.say(format!("    {name}: {line}"));
        }
    };
    let failures = crate::fetch::fetch_many(
        &run.cache,
        &specs,
        &run.fetch_options(per_host),
        run.jobs,
        &say,
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures
            .iter()
            .map(|(_, e)| e.to_string())
            .collect::<Vec<_>>()
            .join("\n"))
    }
}
