//! Gears configuration: core keys (matched case-insensitively), the Python plugin's keys (exact
//! case, read from the extra dictionary) and user-defined "extra" keys, as configuration.md says.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

/// ProfileExecutions != 0, mirrored for the hot path (every Python callback checks it).
pub static PROFILING: AtomicBool = AtomicBool::new(false);
use std::sync::{LazyLock, RwLock, RwLockReadGuard};

use crate::reply::Reply;

/// The engine's own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CoreKey {
    MaxExecutions,
    MaxExecutionsPerRegistration,
    ProfileExecutions,
    ExecutionThreads,
    ExecutionMaxIdleTime,
    SendMsgRetries,
    Plugin,
}

const CORE_KEYS: [(&str, CoreKey); 7] = [
    ("MaxExecutions", CoreKey::MaxExecutions),
    (
        "MaxExecutionsPerRegistration",
        CoreKey::MaxExecutionsPerRegistration,
    ),
    ("ProfileExecutions", CoreKey::ProfileExecutions),
    ("ExecutionThreads", CoreKey::ExecutionThreads),
    ("ExecutionMaxIdleTime", CoreKey::ExecutionMaxIdleTime),
    ("SendMsgRetries", CoreKey::SendMsgRetries),
    ("Plugin", CoreKey::Plugin),
];

impl CoreKey {
    fn find(name: &str, exact_case: bool) -> Option<CoreKey> {
        CORE_KEYS
            .iter()
            .find(|(k, _)| {
                if exact_case {
                    *k == name
                } else {
                    k.eq_ignore_ascii_case(name)
                }
            })
            .map(|(_, key)| *key)
    }

    fn runtime(self) -> bool {
        !matches!(self, CoreKey::ExecutionThreads | CoreKey::Plugin)
    }
}

/// The Python plugin's keys: (name, kind, changeable at runtime).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PyKind {
    Bool,
    PositiveInt,
    Text,
}

const PYTHON_KEYS: [(&str, PyKind, bool); 13] = [
    ("CreateVenv", PyKind::Bool, false),
    ("DownloadDeps", PyKind::Bool, false),
    ("ForeceDownloadDepsOnEnterprise", PyKind::Bool, false),
    ("PythonAttemptTraceback", PyKind::Bool, true),
    ("OverridePythonAllocators", PyKind::Bool, false),
    ("PythonInstallReqMaxIdleTime", PyKind::PositiveInt, true),
    ("DependenciesUrl", PyKind::Text, false),
    ("DependenciesSha256", PyKind::Text, false),
    ("PythonInstallationDir", PyKind::Text, false),
    // Ours (DESIGN.md): where requirements come from and where they go.
    ("RequirementsIndexUrl", PyKind::Text, true),
    ("RequirementsFindLinks", PyKind::Text, true),
    ("WheelsCacheDir", PyKind::Text, false),
    ("RequirementsDir", PyKind::Text, false),
];

/// `$XDG_CACHE_HOME/gears-rs/wheels`, else `~/.cache/gears-rs/wheels`, else beside the
/// requirements directory.
fn default_wheels_cache_dir() -> String {
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return format!("{}/gears-rs/wheels", xdg.to_string_lossy());
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return format!("{}/.cache/gears-rs/wheels", home.to_string_lossy());
    }
    format!("{}/gears-rs/wheels", working_dir())
}

/// Redis' working directory (`dir`) as the module loads: relative paths resolve against it.
fn working_dir() -> String {
    std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| ".".into())
}

fn python_key(name: &str) -> Option<(PyKind, bool)> {
    PYTHON_KEYS
        .iter()
        .find(|(k, _, _)| *k == name)
        .map(|(_, kind, runtime)| (*kind, *runtime))
}

/// A value of a Python plugin key as the plugin uses it.
#[derive(Debug, Clone, PartialEq)]
enum PyValue {
    Int(i64),
    Text(String),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub max_executions: i64,
    pub max_executions_per_registration: i64,
    pub profile_executions: i64,
    pub execution_threads: i64,
    pub execution_max_idle_time: i64,
    pub send_msg_retries: i64,
    pub plugins: Vec<String>,
    python: HashMap<&'static str, PyValue>,
    /// User-defined keys (and Python keys as they were given), exact case.
    extra: HashMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        let python = PYTHON_KEYS
            .iter()
            .map(|(k, _, _)| {
                let v = match *k {
                    "PythonAttemptTraceback" | "OverridePythonAllocators" => PyValue::Int(1),
                    "PythonInstallReqMaxIdleTime" => PyValue::Int(30000),
                    "DependenciesUrl" => PyValue::Text(
                        "http://redismodules.s3.amazonaws.com/redisgears/redisgears-python.linux-bookworm-x64.1.2.13.tgz".into(),
                    ),
                    "DependenciesSha256" => PyValue::Text(String::new()),
                    "PythonInstallationDir" => {
                        PyValue::Text("/var/opt/redislabs/modules/rg".into())
                    }
                    "RequirementsIndexUrl" => PyValue::Text("https://pypi.org/simple/".into()),
                    "RequirementsFindLinks" => PyValue::Text(String::new()),
                    "WheelsCacheDir" => PyValue::Text(default_wheels_cache_dir()),
                    "RequirementsDir" => {
                        PyValue::Text(format!("{}/gears-rs/requirements", working_dir()))
                    }
                    _ => PyValue::Int(0),
                };
                (*k, v)
            })
            .collect();
        Config {
            max_executions: 1000,
            max_executions_per_registration: 100,
            profile_executions: 0,
            execution_threads: 3,
            execution_max_idle_time: 5000,
            send_msg_retries: 3,
            plugins: Vec::new(),
            python,
            extra: HashMap::new(),
        }
    }
}

/// Redis' string-to-long-long: optional `-`, digits, no spaces, no `+`, no leading zeros.
pub fn parse_redis_i64(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let first = digits.bytes().next()?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) || (first == b'0' && digits.len() > 1) {
        return None;
    }
    if first == b'0' && s.starts_with('-') {
        return None;
    }
    s.parse().ok()
}

impl Config {
    fn set_core(&mut self, key: CoreKey, value: &str) -> bool {
        if key == CoreKey::Plugin {
            self.plugins.push(value.to_string());
            return true;
        }
        let Some(v) = parse_redis_i64(value) else {
            return false;
        };
        let (slot, valid) = match key {
            CoreKey::MaxExecutions => (&mut self.max_executions, true),
            CoreKey::MaxExecutionsPerRegistration => {
                (&mut self.max_executions_per_registration, true)
            }
            CoreKey::ProfileExecutions => {
                PROFILING.store(v != 0, Ordering::Relaxed);
                (&mut self.profile_executions, true)
            }
            CoreKey::ExecutionThreads => (&mut self.execution_threads, v > 0),
            CoreKey::ExecutionMaxIdleTime => (&mut self.execution_max_idle_time, v > 0),
            CoreKey::SendMsgRetries => (&mut self.send_msg_retries, v >= 0),
            CoreKey::Plugin => unreachable!(),
        };
        if valid {
            *slot = v;
        }
        valid
    }

    /// Applies a Python key's value; false if the plugin would refuse it.
    fn set_python(&mut self, name: &str, kind: PyKind, value: &str) -> bool {
        let parsed = match kind {
            PyKind::Bool => parse_redis_i64(value).map(|v| PyValue::Int((v != 0) as i64)),
            PyKind::PositiveInt => parse_redis_i64(value).filter(|v| *v > 0).map(PyValue::Int),
            PyKind::Text => Some(PyValue::Text(value.to_string())),
        };
        match (parsed, PYTHON_KEYS.iter().find(|(k, _, _)| *k == name)) {
            (Some(v), Some((k, _, _))) => {
                self.python.insert(k, v);
                true
            }
            _ => false,
        }
    }

    /// Parses the module's load arguments (`KEY VALUE ...`).
    pub fn from_load_args(args: &[String]) -> Result<Config, String> {
        let mut config = Config::default();
        let mut it = args.iter();
        while let Some(key) = it.next() {
            let value = it.next();
            if let Some(core) = CoreKey::find(key, false) {
                match value {
                    Some(v) if config.set_core(core, v) => {}
                    _ => return Err(format!("Failed setting config value {key}")),
                }
            } else {
                let Some(v) = value else {
                    return Err(format!("Value was not given to {key}"));
                };
                config.extra.insert(key.clone(), v.clone());
            }
        }
        // The Python plugin then reads its keys from the extra dictionary, exact case.
        let given: Vec<(String, String)> = config
            .extra
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in given {
            if let Some((kind, _)) = python_key(&k) {
                if !config.set_python(&k, kind, &v) {
                    return Err(format!("Failed setting config value {k}"));
                }
            }
        }
        Ok(config)
    }

    pub fn override_python_allocators(&self) -> bool {
        self.python.get("OverridePythonAllocators") == Some(&PyValue::Int(1))
    }

    /// A text key of the Python plugin ("" when it is not a text key).
    pub fn text(&self, key: &str) -> String {
        match self.python.get(key) {
            Some(PyValue::Text(s)) => s.clone(),
            _ => String::new(),
        }
    }

    /// `PythonInstallReqMaxIdleTime`: how long a registration batch waits for each shard.
    pub fn install_req_max_idle(&self) -> std::time::Duration {
        match self.python.get("PythonInstallReqMaxIdleTime") {
            Some(PyValue::Int(ms)) => std::time::Duration::from_millis((*ms).max(1) as u64),
            _ => std::time::Duration::from_secs(30),
        }
    }

    pub fn attempt_traceback(&self) -> bool {
        self.python.get("PythonAttemptTraceback") == Some(&PyValue::Int(1))
    }

    /// An extra (user-defined) value, as Python's `configGet` reads it.
    pub fn extra(&self, key: &str) -> Option<&str> {
        self.extra.get(key).map(String::as_str)
    }

    /// The log lines RedisGears prints after parsing its arguments.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![
            format!("MaxExecutions:{}", self.max_executions),
            format!(
                "MaxExecutionsPerRegistration:{}",
                self.max_executions_per_registration
            ),
            format!("ProfileExecutions:{}", self.profile_executions),
            format!("ExecutionThreads:{}", self.execution_threads),
            format!("ExecutionMaxIdleTime:{}", self.execution_max_idle_time),
            format!("SendMsgRetries:{}", self.send_msg_retries),
        ];
        lines.extend(self.plugins.iter().map(|p| format!("Plugin:{p}")));
        lines
    }

    /// One element of RG.CONFIGGET.
    pub fn get(&self, key: &str) -> Reply {
        if let Some(core) = CoreKey::find(key, true) {
            return match core {
                CoreKey::MaxExecutions => Reply::Integer(self.max_executions),
                CoreKey::MaxExecutionsPerRegistration => {
                    Reply::Integer(self.max_executions_per_registration)
                }
                CoreKey::ProfileExecutions => Reply::Integer(self.profile_executions),
                CoreKey::ExecutionThreads => Reply::Integer(self.execution_threads),
                CoreKey::ExecutionMaxIdleTime => Reply::Integer(self.execution_max_idle_time),
                CoreKey::SendMsgRetries => Reply::Integer(self.send_msg_retries),
                CoreKey::Plugin => Reply::Array(
                    self.plugins
                        .iter()
                        .map(|p| Reply::bulk(p.as_str()))
                        .collect(),
                ),
            };
        }
        match self.python.get(key) {
            Some(PyValue::Int(v)) => return Reply::Integer(*v),
            Some(PyValue::Text(s)) => return Reply::bulk(s.as_str()),
            None => {}
        }
        match self.extra.get(key) {
            Some(v) => Reply::bulk(v.as_str()),
            None => Reply::error(format!("(error) Unsupported config parameter: {key}")),
        }
    }

    /// RG.CONFIGSET over `KEY VALUE ...`: one reply element per key processed.
    pub fn set_many(&mut self, args: &[String]) -> Vec<Reply> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let key = &args[i];
            let value = args.get(i + 1);
            i += 2;
            if let Some(core) = CoreKey::find(key, false) {
                if !core.runtime() {
                    out.push(Reply::error(format!(
                        "(error) Config value {key} not modifiable at runtime"
                    )));
                } else if value.is_some_and(|v| self.set_core(core, v)) {
                    out.push(Reply::ok());
                } else {
                    out.push(Reply::error(format!(
                        "(error) Failed setting config value {key}"
                    )));
                }
                continue;
            }
            let Some(value) = value else {
                out.push(Reply::error(format!(
                    "(error) Value was not given to {key}"
                )));
                continue;
            };
            if let Some((kind, runtime)) = python_key(key) {
                if !runtime {
                    out.push(Reply::error(format!(
                        "(error) {key} is not configurable at runtime"
                    )));
                    continue;
                }
                if !self.set_python(key, kind, value) {
                    out.push(Reply::error(format!(
                        "Failed setting config value for key '{key}' with value '{value}'"
                    )));
                    continue;
                }
            }
            self.extra.insert(key.clone(), value.clone());
            out.push(Reply::Simple(
                "OK - value was saved in extra config dictionary".into(),
            ));
        }
        out
    }
}

static CONFIG: LazyLock<RwLock<Config>> = LazyLock::new(|| RwLock::new(Config::default()));

pub fn install(config: Config) {
    PROFILING.store(config.profile_executions != 0, Ordering::Relaxed);
    *CONFIG.write().unwrap_or_else(|e| e.into_inner()) = config;
}

pub fn read() -> RwLockReadGuard<'static, Config> {
    CONFIG.read().unwrap_or_else(|e| e.into_inner())
}

pub fn with_mut<R>(f: impl FnOnce(&mut Config) -> R) -> R {
    f(&mut CONFIG.write().unwrap_or_else(|e| e.into_inner()))
}
