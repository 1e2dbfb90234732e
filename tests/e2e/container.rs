//! The container and the Kubernetes manifests: every manifest parses, each kustomization lists
//! files that exist, the Deployment's probes answer on the real `hookfwd` started with the image's
//! command, and the static binary that `Dockerfile.hookfwd` ships runs in a root as empty as that image.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{Account, Running, workspace_root};
use fake_github::FakeGitHub;
use serde_json::Value;

const TOKEN: &str = "ghp_containerE2eTokenNeverPrinted00017";
const REPO: &str = "k8s-org/api";
const ACCOUNT: Account = Account { token: TOKEN, secret: "", repo: REPO };
const PATIENCE: Duration = Duration::from_secs(90);

fn manifests() -> PathBuf {
    workspace_root().join("deploy/kubernetes")
}

/// Every YAML document of `path`, as JSON values.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::Deserializer::from_str(&text)
        .map(|document| {
            serde::Deserialize::deserialize(document)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()))
        })
        .filter(|document: &Value| !document.is_null())
        .collect()
}

/// Every `.yaml` file under `dir`, recursively.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path.extension() == Some(OsStr::new("yaml")) {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The Dockerfile's default command, from its `CMD [...]` line.
fn image_command() -> Vec<String> {
    let dockerfile = std::fs::read_to_string(workspace_root().join("Dockerfile.hookfwd")).unwrap();
    let line = dockerfile.lines().find_map(|line| line.strip_prefix("CMD ")).expect("a CMD line");
    serde_json::from_str(line).expect("CMD in exec form")
}

/// The base hookfwd Deployment.
fn deployment() -> Value {
    documents(&manifests().join("base/hookfwd-deployment.yaml"))
        .into_iter()
        .find(|document| document["kind"] == "Deployment")
        .expect("a Deployment")
}

#[test]
fn every_manifest_parses_and_each_kustomization_lists_only_files_that_exist() {
    let files = yaml_files(&manifests());
    assert!(files.len() >= 10, "{files:?}");
    let mut listed = BTreeSet::new();
    for file in &files {
        for document in documents(file) {
            assert!(document["apiVersion"].is_string() && document["kind"].is_string(), "{}", file.display());
            if document["kind"] != "Kustomization" {
                assert!(document["metadata"]["name"].is_string(), "{} names what it makes", file.display());
                continue;
            }
            let dir = file.parent().unwrap();
            let resources = document["resources"].as_array().cloned().unwrap_or_default();
            let patches = document["patches"].as_array().cloned().unwrap_or_default();
            let paths = resources
                .iter()
                .filter_map(Value::as_str)
                .chain(patches.iter().filter_map(|patch| patch["path"].as_str()));
            for path in paths {
                let target = dir.join(path);
                assert!(target.exists(), "{} lists {path}, which does not exist", file.display());
                if target.is_dir() {
                    assert!(target.join("kustomization.yaml").exists(), "{path} is no kustomization");
                } else {
                    listed.insert(target.canonicalize().unwrap());
                }
            }
        }
    }
    for file in files.iter().filter(|file| file.file_name() != Some(OsStr::new("kustomization.yaml"))) {
        assert!(listed.contains(&file.canonicalize().unwrap()), "no kustomization lists {}", file.display());
    }
}

#[test]
fn the_deployment_runs_the_image_command_and_probes_its_admin_port() {
    let command = image_command();
    assert_eq!(command[..2], ["forward", "--config"]);
    let container = &deployment()["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(args[..command.len()], command, "the Deployment's args start with the image's command");
    let admin = &command[command.iter().position(|arg| arg == "--admin-listen").unwrap() + 1];
    let port: u16 = admin.rsplit(':').next().unwrap().parse().unwrap();
    let ports = container["ports"].as_array().unwrap();
    for probe in ["livenessProbe", "readinessProbe"] {
        let name = &container[probe]["httpGet"]["port"];
        let resolved = ports.iter().find(|p| &p["name"] == name || &p["containerPort"] == name).unwrap();
        assert_eq!(resolved["containerPort"], port, "{probe} probes the admin port");
    }
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
}

/// The Deployment's args, with the config, the admin address and the state made local.
fn local_args(config: &Path, admin: SocketAddr, api: &str, state: &Path) -> Vec<String> {
    let container = &deployment()["spec"]["template"]["spec"]["containers"][0];
    let mut args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|arg| match arg.as_str().unwrap() {
            "/etc/hookfwd/hookfwd.toml" => config.to_str().unwrap().to_string(),
            "0.0.0.0:9090" => admin.to_string(),
            other => other.to_string(),
        })
        .collect();
    args.extend(["--api-url".into(), api.into(), "--interval".into(), "200ms".into()]);
    args.extend(["--state-dir".into(), state.to_str().unwrap().into()]);
    args
}

fn write_config(dir: &Path, fake: &FakeGitHub) -> PathBuf {
    let path = dir.join("hookfwd.toml");
    let rule = format!(
        "[[rule]]\nfrom = [\"{REPO}\"]\nto = \"http://127.0.0.1:9/\"\nhook_url = \"{}\"\n",
        fake.blackhole_url()
    );
    std::fs::write(&path, rule).unwrap();
    path
}

/// Asks `path` until it answers `status`; fails after [`PATIENCE`].
async fn until_status(admin: SocketAddr, path: &str, status: u16, stderr: impl Fn() -> String) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(response) = e2e::get(format!("http://{admin}{path}")).await
            && response.status().as_u16() == status
        {
            return;
        }
        assert!(Instant::now() < deadline, "{path} never answered {status}; stderr: {}", stderr());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_probe_paths_answer_on_hookfwd_started_with_the_deployment_args() {
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook").await;
    let dir = tempfile::tempdir().unwrap();
    let admin = e2e::free_addr();
    let config = write_config(dir.path(), &fake);
    let args = local_args(&config, admin, fake.api_url().as_str(), &dir.path().join("state"));
    let run = Running::hookfwd(&args, &[("GITHUB_TOKEN", OsStr::new(TOKEN))]);
    let container = &deployment()["spec"]["template"]["spec"]["containers"][0];
    for probe in ["livenessProbe", "readinessProbe"] {
        let path = container[probe]["httpGet"]["path"].as_str().unwrap();
        until_status(admin, path, 200, || run.stderr()).await;
    }
    let annotations = &deployment()["spec"]["template"]["metadata"]["annotations"];
    until_status(admin, annotations["prometheus.io/path"].as_str().unwrap(), 200, || run.stderr()).await;
    run.signal(libc::SIGTERM);
    assert_eq!(run.finish().await.code, Some(0));
}

/// Builds the static binary the way `Dockerfile.hookfwd` does, unoptimised (a release build takes
/// twenty minutes on two cores; linking, roots and randomness are the same).
fn static_hookfwd() -> PathBuf {
    let output = Command::new(workspace_root().join("scripts/build-static"))
        .arg("hookfwd")
        .env("BUILD_STATIC_PROFILE", "dev")
        .current_dir(workspace_root())
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/build-static runs");
    assert!(output.status.success(), "scripts/build-static hookfwd failed");
    workspace_root().join(String::from_utf8(output.stdout).unwrap().trim())
}

// A static build the first time (a few minutes). The root has no /dev at all: a static glibc
// binary cannot find getrandom() with dlsym, and getrandom's fallback polls /dev/random, so
// scripts/build-static picks the getrandom backend that calls the linked getrandom() instead.
#[tokio::test(flavor = "multi_thread")]
async fn the_static_binary_runs_in_a_root_with_no_trust_store_and_no_libraries() {
    let binary = static_hookfwd();
    let (fake, _) = ACCOUNT.fake_with_hook("repo, admin:repo_hook").await;
    // A root holding what the image holds (the binary, the state directory), plus the /etc/hosts
    // the container runtime mounts: no libc, no /etc/ssl, no nsswitch.conf.
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("usr/local/bin")).unwrap();
    std::fs::create_dir_all(root.path().join("etc/hookfwd")).unwrap();
    std::fs::create_dir_all(root.path().join("var/lib/hookfwd")).unwrap();
    std::fs::copy(&binary, root.path().join("usr/local/bin/hookfwd")).unwrap();
    std::fs::write(root.path().join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    write_config(&root.path().join("etc/hookfwd"), &fake);
    let admin = e2e::free_addr();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("stderr");
    // A host name, so that resolving goes through the static libc's built-in NSS.
    let api = format!("http://localhost:{}/", fake.addr().port());
    let mut command = image_command();
    command.iter_mut().filter(|arg| *arg == "0.0.0.0:9090").for_each(|arg| *arg = admin.to_string());
    command.extend(["--api-url".into(), api, "--interval".into(), "200ms".into()]);
    // chroot needs root; elsewhere a user namespace maps this user to root inside it.
    // SAFETY: geteuid reads the process's effective user id; it touches no memory.
    let mut chroot = if unsafe { libc::geteuid() } == 0 {
        Command::new("chroot")
    } else {
        let mut unshare = Command::new("unshare");
        unshare.args(["--user", "--map-root-user", "chroot"]);
        unshare
    };
    let child = chroot
        .arg(root.path())
        .arg("/usr/local/bin/hookfwd")
        .args(&command)
        .env_clear()
        // To find chroot (and unshare); inside the root there is nothing for it to find.
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GITHUB_TOKEN", TOKEN)
        .env("HOOKFWD_STATE_DIR", "/var/lib/hookfwd")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("chroot starts");
    let run = e2e::Guard(child);
    until_status(admin, "/readyz", 200, || std::fs::read_to_string(&log).unwrap_or_default()).await;
    let metrics = e2e::get(format!("http://{admin}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("hookfwd_last_progress_timestamp_seconds{source=\"k8s-org/api\"}"), "{metrics}");
    run.signal(libc::SIGTERM);
    let mut run = run;
    let status = run.0.wait().unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "{status}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(root.path().join("var/lib/hookfwd").read_dir().unwrap().next().is_some(), "the ledger was written");
}
