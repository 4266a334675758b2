//! The Kubernetes recipe (deploy/kubernetes/) and the Containerfile, read
//! as files: the manifests parse as YAML and are wired to each other (the
//! Job's N written three times alike, its target the Service's name and
//! port, the Service's selector the sink's pod labels, its ports the sink's
//! container ports and listen addresses, the programs those the image
//! holds), and collect.sh is valid shell that, with a stand-in kubectl and
//! smtp-source, keeps the last JSON line of each pod and merges them.
//!
//! Nothing here needs a cluster, a container engine or the programs: the
//! image itself is built and tried by scripts/build-image.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use yaml_rust2::{Yaml, YamlLoader};

const DIR: &str = "deploy/kubernetes";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every document of a YAML file.
fn load(path: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: not YAML: {e}"))
}

/// The one document of `kind` among `docs`.
fn object<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    let found: Vec<&Yaml> = docs
        .iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect();
    assert_eq!(found.len(), 1, "exactly one {kind} expected");
    found[0]
}

/// Access by a path of keys and indices; each panics naming the path.
trait At {
    fn at(&self, path: &[&str]) -> &Yaml;
    fn str(&self, path: &[&str]) -> &str {
        self.at(path)
            .as_str()
            .unwrap_or_else(|| panic!("{path:?}: not a string: {:?}", self.at(path)))
    }
    fn int(&self, path: &[&str]) -> i64 {
        self.at(path)
            .as_i64()
            .unwrap_or_else(|| panic!("{path:?}: not an integer: {:?}", self.at(path)))
    }
    fn list(&self, path: &[&str]) -> &[Yaml] {
        self.at(path)
            .as_vec()
            .unwrap_or_else(|| panic!("{path:?}: not a list: {:?}", self.at(path)))
    }
}

impl At for Yaml {
    fn at(&self, path: &[&str]) -> &Yaml {
        let v = path.iter().fold(self, |v, key| match key.parse::<usize>() {
            Ok(i) => &v[i],
            Err(_) => &v[*key],
        });
        assert!(!v.is_badvalue(), "{path:?}: missing");
        v
    }
}

/// A string map (labels, selectors) as sorted pairs.
fn labels(v: &Yaml) -> Vec<(String, String)> {
    let hash = v.as_hash().unwrap_or_else(|| panic!("not a map: {v:?}"));
    let mut pairs: Vec<(String, String)> = hash
        .iter()
        .map(|(k, v)| {
            let (Some(k), Some(v)) = (k.as_str(), v.as_str()) else {
                panic!("labels must be strings: {k:?}: {v:?}");
            };
            (k.to_owned(), v.to_owned())
        })
        .collect();
    pairs.sort();
    pairs
}

/// A container's args, each of which must be a YAML string (an unquoted
/// 1000 is an integer, which Kubernetes refuses in args).
fn args(container: &Yaml) -> Vec<String> {
    container
        .list(&["args"])
        .iter()
        .map(|a| {
            a.as_str()
                .unwrap_or_else(|| panic!("an arg that is not a string: {a:?} (quote it)"))
                .to_owned()
        })
        .collect()
}

/// The value after option `name` (`--name VALUE` or `--name=VALUE`).
fn option<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let prefix = format!("{name}=");
    args.iter().enumerate().find_map(|(i, a)| {
        if a == name {
            Some(args.get(i + 1).map_or("", String::as_str))
        } else {
            a.strip_prefix(&prefix)
        }
    })
}

/// `host:port` split at the last colon, the port as a number.
fn host_port(s: &str) -> (&str, i64) {
    let (host, port) = s
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{s:?}: not host:port"));
    let port = port
        .parse()
        .unwrap_or_else(|_| panic!("{s:?}: not a port number"));
    (host, port)
}

/// The only container of a pod template.
fn container(workload: &Yaml) -> &Yaml {
    let containers = workload.list(&["spec", "template", "spec", "containers"]);
    assert_eq!(containers.len(), 1, "one container per pod");
    &containers[0]
}

/// A container's ports: (name, number).
fn container_ports(c: &Yaml) -> Vec<(String, i64)> {
    c.list(&["ports"])
        .iter()
        .map(|p| (p.str(&["name"]).to_owned(), p.int(&["containerPort"])))
        .collect()
}

/// A port given by number or by the name of a container port.
fn resolve_port(port: &Yaml, ports: &[(String, i64)]) -> i64 {
    if let Some(n) = port.as_i64() {
        assert!(
            ports.iter().any(|(_, p)| *p == n),
            "port {n} is not a container port: {ports:?}"
        );
        return n;
    }
    let name = port
        .as_str()
        .unwrap_or_else(|| panic!("a port is a number or a name: {port:?}"));
    ports
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no container port named {name:?}: {ports:?}"))
        .1
}

/// The pod-level securityContext runs as a non-root user, so the sink
/// needs no -u and nothing runs as root.
fn assert_non_root(workload: &Yaml, what: &str) {
    let sc = workload.at(&["spec", "template", "spec", "securityContext"]);
    assert_eq!(
        sc.at(&["runAsNonRoot"]).as_bool(),
        Some(true),
        "{what}: runAsNonRoot"
    );
    assert!(sc.int(&["runAsUser"]) > 0, "{what}: runAsUser is not root");
}

#[test]
fn sink_deployment_and_service_are_wired() {
    let docs = load(&format!("{DIR}/sink.yaml"));
    let deployment = object(&docs, "Deployment");
    let service = object(&docs, "Service");

    // The Deployment's selector picks its own pods, and so does the Service's.
    let pod_labels = labels(deployment.at(&["spec", "template", "metadata", "labels"]));
    let selector = labels(deployment.at(&["spec", "selector", "matchLabels"]));
    let service_selector = labels(service.at(&["spec", "selector"]));
    for (what, sel) in [("Deployment", &selector), ("Service", &service_selector)] {
        assert!(!sel.is_empty(), "{what}: empty selector");
        for pair in sel {
            assert!(
                pod_labels.contains(pair),
                "{what} selector {pair:?} is not a label of the sink's pods {pod_labels:?}"
            );
        }
    }

    assert_non_root(deployment, "sink");
    let sink = container(deployment);
    assert_eq!(sink.list(&["command"]).len(), 1);
    assert_eq!(sink.str(&["command", "0"]), "/smtp-sink");
    let args = args(sink);
    assert!(
        !args.iter().any(|a| a == "-u" || a.starts_with("--user")),
        "a non-root sink needs no -u: {args:?}"
    );
    // `smtp-sink [options] ADDR:PORT BACKLOG`: the last two.
    let [.., listen, backlog] = args.as_slice() else {
        panic!("no address and backlog: {args:?}")
    };
    backlog
        .parse::<u32>()
        .unwrap_or_else(|_| panic!("backlog {backlog:?}"));
    let (listen_host, smtp_port) = host_port(listen);
    // Anything but all addresses is unreachable from other pods.
    assert!(
        ["0.0.0.0", "[::]", ""].contains(&listen_host),
        "the sink must listen on all addresses, not {listen_host:?}"
    );
    let metrics = option(&args, "--metrics").expect("--metrics");
    let (metrics_host, metrics_port) = host_port(metrics);
    assert!(
        ["0.0.0.0", "[::]"].contains(&metrics_host),
        "--metrics must listen on all addresses, not {metrics_host:?}"
    );
    assert!(
        args.iter().any(|a| a == "--verify"),
        "the Job stamps its messages"
    );

    let ports = container_ports(sink);
    assert!(
        ports.contains(&("smtp".to_owned(), smtp_port)),
        "container port smtp is not the sink's {smtp_port}: {ports:?}"
    );
    assert!(
        ports.contains(&("metrics".to_owned(), metrics_port)),
        "container port metrics is not --metrics' {metrics_port}: {ports:?}"
    );

    // The readiness probe asks a port the sink serves.
    let probe = sink.at(&["readinessProbe"]);
    let probed = if !probe["httpGet"].is_badvalue() {
        assert_eq!(probe.str(&["httpGet", "path"]), "/metrics");
        resolve_port(probe.at(&["httpGet", "port"]), &ports)
    } else {
        resolve_port(probe.at(&["tcpSocket", "port"]), &ports)
    };
    assert!([smtp_port, metrics_port].contains(&probed));
    assert!(!sink.at(&["resources", "requests"]).is_badvalue());

    // Every Service port leads to a container port of the same number
    // (so Service name:port is what the sink listens on).
    let service_ports = service.list(&["spec", "ports"]);
    for name in ["smtp", "metrics"] {
        let port = service_ports
            .iter()
            .find(|p| p["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no Service port {name}"));
        let target = resolve_port(port.at(&["targetPort"]), &ports);
        assert_eq!(port.int(&["port"]), target, "Service port {name}");
    }
}

#[test]
fn source_job_is_indexed_and_targets_the_sink_service() {
    let sink_docs = load(&format!("{DIR}/sink.yaml"));
    let deployment = object(&sink_docs, "Deployment");
    let service = object(&sink_docs, "Service");
    let docs = load(&format!("{DIR}/source-job.yaml"));
    let job = object(&docs, "Job");

    let spec = job.at(&["spec"]);
    assert_eq!(spec.str(&["completionMode"]), "Indexed");
    let n = spec.int(&["completions"]);
    assert!(n >= 1);
    assert_eq!(
        spec.int(&["parallelism"]),
        n,
        "parallelism must equal completions"
    );
    assert_eq!(
        spec.int(&["backoffLimit"]),
        0,
        "a retried segment sends its share twice"
    );
    assert_eq!(spec.str(&["template", "spec", "restartPolicy"]), "Never");
    assert_non_root(job, "source");

    let source = container(job);
    assert_eq!(source.str(&["command", "0"]), "/smtp-source");
    assert_eq!(
        source.str(&["image"]),
        container(deployment).str(&["image"]),
        "one image for the source and the sink"
    );
    let args = args(source);
    assert_eq!(
        option(&args, "--segment"),
        Some(format!("auto/{n}").as_str()),
        "--segment auto/N with N = completions = {n}: {args:?}"
    );
    assert_eq!(option(&args, "--json"), Some("-"), "--json - : {args:?}");
    let run_id = option(&args, "--run-id").expect("--run-id");
    assert!(
        (1..=32).contains(&run_id.len())
            && run_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
        "--run-id {run_id:?}: 1 to 32 of A-Z a-z 0-9 _ -"
    );
    assert!(
        args.iter().any(|a| a == "--stamp"),
        "the sink verifies stamps"
    );

    // The target, last: the Service's name (or a longer DNS name of it)
    // and its SMTP port.
    let target = args.last().unwrap();
    let (host, port) = host_port(target);
    let service_name = service.str(&["metadata", "name"]);
    assert!(
        host == service_name || host.starts_with(&format!("{service_name}.")),
        "the Job's target {target} is not the Service {service_name}"
    );
    let smtp = service
        .list(&["spec", "ports"])
        .iter()
        .find(|p| p.int(&["port"]) == port)
        .unwrap_or_else(|| panic!("the Service has no port {port}"));
    assert_eq!(smtp.str(&["name"]), "smtp");

    // The README gives the same N.
    let readme = read(&format!("{DIR}/README.md"));
    assert!(
        readme.contains(&format!("auto/{n}")),
        "README.md does not show --segment auto/{n}"
    );
}

#[test]
fn the_image_holds_the_programs_the_manifests_run() {
    let containerfile = read("Containerfile");
    let lines: Vec<&str> = containerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let last_from = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("FROM");
    assert_eq!(lines[last_from], "FROM scratch", "the final stage");
    let last_stage = &lines[last_from..];
    assert!(
        !last_stage.iter().any(|l| l.starts_with("ENTRYPOINT")),
        "no ENTRYPOINT: the manifests name the program"
    );
    let user = last_stage
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER in the final stage");
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "USER {user}"
    );
    // The builder stage scripts/build-image stands in for.
    assert!(lines
        .iter()
        .any(|l| l.starts_with("FROM ") && l.ends_with(" AS builder")));
    let copy = last_stage
        .iter()
        .find(|l| l.starts_with("COPY --from=builder"))
        .expect("COPY --from=builder");
    for program in ["smtp-source", "smtp-sink", "smtp-probe"] {
        assert!(
            copy.contains(&format!("/out/{program} ")),
            "{program} not copied"
        );
    }
    assert!(copy.ends_with(" /"), "the programs go to /: {copy}");
    // And the runtime user of the manifests is the image's.
    for (file, kind) in [("sink.yaml", "Deployment"), ("source-job.yaml", "Job")] {
        let docs = load(&format!("{DIR}/{file}"));
        let uid =
            object(&docs, kind).int(&["spec", "template", "spec", "securityContext", "runAsUser"]);
        assert!(
            user.starts_with(&format!("{uid}:")) || user == uid.to_string(),
            "{file}: runAsUser {uid}, image USER {user}"
        );
    }
}

// ---------------------------------------------------------------------
// collect.sh

fn collect_sh() -> PathBuf {
    root().join(DIR).join("collect.sh")
}

#[test]
fn collect_sh_is_valid_shell() {
    for shell in ["sh", "bash"] {
        let status = Command::new(shell)
            .arg("-n")
            .arg(collect_sh())
            .status()
            .unwrap_or_else(|e| panic!("{shell}: {e}"));
        assert!(status.success(), "{shell} -n collect.sh");
    }
    // shellcheck where it is installed (scripts/build-image's machines and
    // CI need not have it).
    if let Ok(out) = Command::new("shellcheck").arg(collect_sh()).output() {
        assert!(
            out.status.success(),
            "shellcheck collect.sh:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// A stand-in kubectl: a Job of `segments` whose pod I logs a progress
/// line, its report `{"segment":I}`, an older-looking JSON line before it
/// and a last stderr line that is not JSON; pods listed in `missing` log
/// no report. `outcome` is `complete` or `failed`.
fn fake_kubectl(dir: &Path, segments: usize, missing: &[usize], outcome: &str) -> PathBuf {
    let mut pods = String::new();
    for i in 0..segments {
        pods += &format!("smtp-source-{i}-abcde {i}\\n");
    }
    let missing: Vec<String> = missing
        .iter()
        .map(|i| format!("smtp-source-{i}-abcde"))
        .collect();
    let script = format!(
        r#"#!/bin/sh
# the arguments after an optional --namespace NS
if [ "$1" = --namespace ]; then
  [ "$2" = load ] || {{ echo "namespace $2" >&2; exit 9; }}
  shift 2
fi
echo "$*" >>"{log}"
case "$1 $2" in
  "get job/smtp-source") echo {segments} ;;
  "get job/"*) echo "Error from server (NotFound)" >&2; exit 1 ;;
  "wait --for=condition={outcome}") exit 0 ;;
  "wait "*) exit 1 ;;
  "get pods") printf '{pods}' ;;
  "logs pod/"*)
    pod="${{2#pod/}}"
    echo "smtp-source: connecting"
    case " {missing} " in *" $pod "*) exit 0 ;; esac
    index="${{pod#smtp-source-}}"; index="${{index%-abcde}}"
    echo '{{"old":true}}'
    echo "{{\"segment\":$index}}"
    echo "smtp-source: done"
    ;;
  *) echo "unexpected: $*" >&2; exit 9 ;;
esac
"#,
        log = dir.join("kubectl.log").display(),
        missing = missing.join(" "),
    );
    let path = dir.join("kubectl");
    fs::write(&path, script).unwrap();
    path
}

/// A stand-in smtp-source that records its arguments and stdin and prints
/// a merged "report".
fn fake_merge(dir: &Path) -> PathBuf {
    let script = format!(
        r#"#!/bin/sh
echo "$*" >"{args}"
cat >"{input}"
echo "merged summary" >&2
echo '{{"merged":true}}'
"#,
        args = dir.join("merge.args").display(),
        input = dir.join("merge.input").display(),
    );
    let path = dir.join("smtp-source");
    fs::write(&path, script).unwrap();
    path
}

fn run_collect(dir: &Path, kubectl: &Path, merge: &Path) -> std::process::Output {
    Command::new("sh")
        .arg(collect_sh())
        .current_dir(dir)
        .env("NAMESPACE", "load")
        .env("TIMEOUT", "30")
        .env("KUBECTL", format!("sh {}", kubectl.display()))
        .env("SMTP_SOURCE", format!("sh {}", merge.display()))
        .env_remove("JOB")
        .env_remove("OUT")
        .output()
        .unwrap()
}

#[test]
fn collect_sh_merges_the_last_json_line_of_each_pod() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let kubectl = fake_kubectl(dir, 4, &[], "complete");
    let merge = fake_merge(dir);
    let out = run_collect(dir, &kubectl, &merge);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "collect.sh failed: {stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{\"merged\":true}\n");
    assert!(stderr.contains("merged summary"), "{stderr}");
    assert!(stderr.contains("4 of 4 segment reports"), "{stderr}");

    let reports = dir.join("smtp-source-reports");
    for i in 0..4 {
        let report = fs::read_to_string(reports.join(format!("segment-{i}.json"))).unwrap();
        assert_eq!(report, format!("{{\"segment\":{i}}}\n"));
    }
    assert_eq!(
        fs::read_to_string(reports.join("merged.json")).unwrap(),
        "{\"merged\":true}\n"
    );
    assert_eq!(
        fs::read_to_string(dir.join("merge.args")).unwrap(),
        "--merge-reports - --summary --json -\n"
    );
    let input = fs::read_to_string(dir.join("merge.input")).unwrap();
    let mut lines: Vec<&str> = input.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "{\"segment\":0}",
            "{\"segment\":1}",
            "{\"segment\":2}",
            "{\"segment\":3}"
        ]
    );
    let calls = fs::read_to_string(dir.join("kubectl.log")).unwrap();
    assert!(
        calls.contains("wait --for=condition=complete job/smtp-source"),
        "{calls}"
    );
    assert!(
        calls.contains("get pods --selector job-name=smtp-source"),
        "{calls}"
    );
}

#[test]
fn collect_sh_merges_a_failed_job_partially_and_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let kubectl = fake_kubectl(dir, 4, &[2], "failed");
    let merge = fake_merge(dir);
    let out = run_collect(dir, &kubectl, &merge);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("job/smtp-source failed"), "{stderr}");
    assert!(
        stderr.contains("smtp-source-2-abcde (segment 2): no JSON report"),
        "{stderr}"
    );
    assert!(stderr.contains("3 of 4 segment reports"), "{stderr}");
    assert_eq!(
        fs::read_to_string(dir.join("merge.args")).unwrap(),
        "--merge-reports - --partial --summary --json -\n"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{\"merged\":true}\n");
}

#[test]
fn collect_sh_refuses_a_job_that_does_not_exist() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let kubectl = fake_kubectl(dir, 4, &[], "complete");
    let merge = fake_merge(dir);
    let out = Command::new("sh")
        .arg(collect_sh())
        .current_dir(dir)
        .env("JOB", "nope")
        .env("KUBECTL", format!("sh {}", kubectl.display()))
        .env("SMTP_SOURCE", format!("sh {}", merge.display()))
        .env_remove("NAMESPACE")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.join("merge.args").exists());
}
