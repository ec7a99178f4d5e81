//! `dbt`: runs one dbt command (build by default) with a selection, streams dbt's log
//! into the attempt's log, and turns run_results.json into the task's output, one
//! entry per model and test. A failing model or test fails the task and is named.
//! A dbt that is a Python script runs in a warm process ([`warm`]) instead of a new
//! process per command.

mod warm;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use async_trait::async_trait;
use orchestrator::{ParamError, Task, TaskConfig, TaskContext};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::process::Command;

use crate::bronze::snowflake::SnowflakeAuth;
use crate::process::run_logged;
use crate::settings::{Settings, WarehouseKind};

/// The `dbt` task's params: which dbt command to run, on what, and how.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dbt {
    /// The dbt command, words separated by spaces: "build", "run", "source freshness".
    #[serde(default = "default_command")]
    pub command: String,
    /// A node selection (`--select`).
    #[serde(default)]
    pub select: Option<String>,
    /// More arguments, passed as they are.
    #[serde(default)]
    pub args: Vec<String>,
    /// The dbt project (default: the `dbt.project` setting, ./dbt).
    #[serde(default)]
    pub project_dir: Option<PathBuf>,
    /// Where profiles.yml is (default: the project folder).
    #[serde(default)]
    pub profiles_dir: Option<PathBuf>,
    /// The profile target (default: the `dbt.target` setting, else the profile's,
    /// `local`).
    #[serde(default)]
    pub target: Option<String>,
    /// Extra environment variables for dbt.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The dbt executable (default: the `dbt.binary` setting, `dbt` on the PATH).
    #[serde(default)]
    pub dbt: Option<PathBuf>,
    /// Run in a warm, reused dbt process (the default when `dbt` is a Python
    /// script); false starts a new `dbt` process for each run.
    #[serde(default = "default_warm")]
    pub warm: bool,
}

fn default_warm() -> bool {
    true
}

fn default_command() -> String {
    "build".into()
}

impl TaskConfig for Dbt {
    fn validate(&self) -> Result<(), ParamError> {
        if self.command.split_whitespace().next().is_none() {
            return Err(ParamError::at(
                "command",
                "must name a dbt command, such as \"build\"",
            ));
        }
        Ok(())
    }
}

/// The profile's variables for the warehouse in `settings`: SETLIST_WAREHOUSE_* for
/// PostgreSQL, SNOWFLAKE_* (from its connection) for Snowflake, so dbt builds in the
/// warehouse the loader loads.
fn warehouse_env(settings: &Settings) -> anyhow::Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    if settings.warehouse.kind == WarehouseKind::Snowflake {
        let sf = settings.snowflake(None, None)?;
        env.insert("SNOWFLAKE_ACCOUNT".into(), sf.account);
        env.insert("SNOWFLAKE_USER".into(), sf.user);
        env.insert("SNOWFLAKE_DATABASE".into(), sf.database);
        for (var, value) in [
            ("SNOWFLAKE_WAREHOUSE", sf.warehouse),
            ("SNOWFLAKE_ROLE", sf.role),
        ] {
            if let Some(v) = value {
                env.insert(var.into(), v);
            }
        }
        match sf.auth {
            SnowflakeAuth::KeyPair(pem) => env.insert("SNOWFLAKE_PRIVATE_KEY".into(), pem),
            SnowflakeAuth::Password(p) => env.insert("SNOWFLAKE_PASSWORD".into(), p),
        };
        return Ok(env);
    }
    let Ok(url) = settings.warehouse_url() else {
        return Ok(env);
    };
    let parsed = url::Url::parse(url.expose())
        .with_context(|| format!("the warehouse URL {url} is not a URL"))?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    if let Some(host) = parsed.host_str() {
        env.insert("SETLIST_WAREHOUSE_HOST".into(), host.to_string());
    }
    env.insert(
        "SETLIST_WAREHOUSE_PORT".into(),
        parsed.port().unwrap_or(5432).to_string(),
    );
    if !parsed.username().is_empty() {
        env.insert("SETLIST_WAREHOUSE_USER".into(), decode(parsed.username()));
    }
    if let Some(password) = parsed.password() {
        env.insert("SETLIST_WAREHOUSE_PASSWORD".into(), decode(password));
    }
    let db = parsed.path().trim_start_matches('/');
    if !db.is_empty() {
        env.insert("SETLIST_WAREHOUSE_DB".into(), decode(db));
    }
    // The URL's TLS mode reaches dbt too (dbt-postgres takes libpq's names).
    if let Some((_, mode)) = parsed.query_pairs().find(|(k, _)| k == "sslmode") {
        env.insert("SETLIST_WAREHOUSE_SSLMODE".into(), mode.into_owned());
    }
    Ok(env)
}

/// One model's, test's or source's result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeResult {
    /// The node's dbt id (`model.<project>.<name>`), to name it in messages.
    pub unique_id: String,
    /// How it ended in dbt's words (`success`, `error`, `fail`, ...); some fail the task.
    pub status: String,
    /// Seconds it took, to spot slow models.
    pub execution_time: f64,
    /// The message dbt gave, which says why when it failed.
    #[serde(default)]
    pub message: Option<String>,
    /// For a test, how many rows it found wrong.
    #[serde(default)]
    pub failures: Option<i64>,
}

#[derive(Deserialize)]
struct Results {
    results: Vec<NodeResult>,
    #[serde(default)]
    elapsed_time: f64,
}

const FAILED: [&str; 4] = ["error", "fail", "runtime error", "warn_error"];

#[async_trait]
impl Task for Dbt {
    async fn run(&self, ctx: &TaskContext) -> anyhow::Result<Value> {
        let settings = Settings::of(ctx);
        let dbt = self
            .dbt
            .clone()
            .unwrap_or_else(|| settings.dbt.binary.clone());
        let project = self
            .project_dir
            .clone()
            .unwrap_or_else(|| settings.dbt.project.clone());
        // The profile reads the warehouse from SETLIST_WAREHOUSE_*: the same one the
        // loader and the pages use, whatever the task's own env says on top.
        let mut env = warehouse_env(&settings)?;
        env.extend(self.env.clone());
        let profiles = self.profiles_dir.clone().unwrap_or_else(|| project.clone());
        // Its own folder per command: run ids are per state store and every one-off run
        // is run 0, so two commands can share a run, task and try, and each removes its
        // folder when it ends.
        let target_path = std::env::temp_dir().join(format!(
            "setlist-dbt-{}-{}-{}-{}",
            ctx.run_id,
            ctx.task_id,
            ctx.try_number,
            uuid::Uuid::new_v4().simple()
        ));
        let parse_cache = ParseCache::for_project(&project);
        parse_cache.restore_into(&target_path);
        let mut args: Vec<String> = self.command.split_whitespace().map(str::to_owned).collect();
        for (flag, path) in [
            ("--project-dir", &project),
            ("--profiles-dir", &profiles),
            ("--target-path", &target_path),
        ] {
            let path = path
                .to_str()
                .with_context(|| format!("{flag} {} is not UTF-8", path.display()))?;
            args.extend([flag.to_owned(), path.to_owned()]);
        }
        if let Some(select) = &self.select {
            args.extend(["--select".to_owned(), select.clone()]);
        }
        if let Some(target) = self.target.as_ref().or(settings.dbt.target.as_ref()) {
            args.extend(["--target".to_owned(), target.clone()]);
        }
        args.extend(self.args.iter().cloned());
        let python = self.warm.then(|| warm::python_of(&dbt)).flatten();
        let (success, detail) = match python {
            Some(python) => {
                let spec = warm::Spec {
                    python,
                    env: env.clone(),
                };
                let verdict = warm::run(&spec, &args, ctx).await?;
                let detail = verdict.error.unwrap_or_else(|| "it failed".into());
                (verdict.success, detail)
            }
            None => {
                let mut cmd = Command::new(&dbt);
                cmd.args(&args)
                    .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
                    .env("DBT_USE_COLORS", "false")
                    .envs(&env);
                let what = format!(
                    "dbt {} ({}; install it with scripts/dbt.sh)",
                    self.command,
                    dbt.display()
                );
                let status = run_logged(cmd, ctx, &what).await?.status;
                (status.success(), format!("it exited with {status}"))
            }
        };
        let file = if self.command.trim() == "source freshness" {
            "sources.json"
        } else {
            "run_results.json"
        };
        let results: Option<Results> = std::fs::read(target_path.join(file))
            .ok()
            .map(|bytes| serde_json::from_slice(&bytes))
            .transpose()
            .with_context(|| format!("cannot read dbt's {file}"))?;
        parse_cache.save_from(&target_path);
        let _ = std::fs::remove_dir_all(&target_path);
        let Some(results) = results else {
            anyhow::bail!("dbt {} ended before writing {file}: {detail}", self.command);
        };
        let failed: Vec<String> = results
            .results
            .iter()
            .filter(|r| FAILED.contains(&r.status.as_str()))
            .map(|r| {
                format!(
                    "{} ({}){}",
                    r.unique_id,
                    r.status,
                    r.message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                )
            })
            .collect();
        if !success || !failed.is_empty() {
            anyhow::bail!(
                "dbt {} failed: {}",
                self.command,
                if failed.is_empty() {
                    detail
                } else {
                    failed.join("; ")
                }
            );
        }
        Ok(serde_json::json!({
            "command": self.command,
            "elapsed_s": results.elapsed_time,
            "results": results.results,
        }))
    }
}

/// dbt's partial parse state for one project, kept between runs. Each attempt has a
/// target folder of its own (its results are its own), so without this every run
/// would parse the whole project again: seconds each time, every minute. dbt checks
/// the saved state against the project's files, vars and profile and parses afresh
/// when anything changed, so sharing it is safe; the last writer wins.
struct ParseCache {
    file: PathBuf,
}

impl ParseCache {
    const NAME: &'static str = "partial_parse.msgpack";

    /// The cache of `project`, in a folder named by a SHA-256 of its canonical path
    /// (stable across releases, unlike the standard library's hasher).
    fn for_project(project: &std::path::Path) -> Self {
        use sha2::Digest;
        let path = std::fs::canonicalize(project).unwrap_or_else(|_| project.to_path_buf());
        let digest = sha2::Sha256::digest(path.as_os_str().as_encoded_bytes());
        let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let dir = std::env::temp_dir().join(format!("setlist-dbt-parse-{name}"));
        Self {
            file: dir.join(Self::NAME),
        }
    }

    fn restore_into(&self, target: &std::path::Path) {
        if std::fs::create_dir_all(target).is_ok() {
            let _ = std::fs::copy(&self.file, target.join(Self::NAME));
        }
    }

    fn save_from(&self, target: &std::path::Path) {
        let Some(dir) = self.file.parent() else {
            return;
        };
        let staged = dir.join(format!("{}.{}", Self::NAME, uuid::Uuid::new_v4().simple()));
        let saved = std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::copy(target.join(Self::NAME), &staged))
            .and_then(|_| std::fs::rename(&staged, &self.file));
        if saved.is_err() {
            let _ = std::fs::remove_file(&staged);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_warehouse_url_reaches_the_profile_decoded() {
        let mut settings = crate::settings::Settings::default();
        settings.warehouse = crate::settings::WarehouseSettings {
            kind: crate::settings::WarehouseKind::Postgres,
            url: Some(orchestrator::DbUrl::new(
                "postgres://me:p%26s+w%20rd@wh.internal:6543/gold?sslmode=require",
            )),
            connection: None,
        };
        let env = super::warehouse_env(&settings).unwrap();
        assert_eq!(env["SETLIST_WAREHOUSE_HOST"], "wh.internal");
        assert_eq!(env["SETLIST_WAREHOUSE_PORT"], "6543");
        assert_eq!(env["SETLIST_WAREHOUSE_USER"], "me");
        assert_eq!(env["SETLIST_WAREHOUSE_PASSWORD"], "p&s+w rd");
        assert_eq!(env["SETLIST_WAREHOUSE_DB"], "gold");
        assert_eq!(env["SETLIST_WAREHOUSE_SSLMODE"], "require");
    }
}
