//! The Kubernetes manifests as an operator applies them: each overlay rendered by
//! `kubectl kustomize` and checked object by object against each other, the image
//! (`deploy/Dockerfile`) and the real `propdesk` binary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

const OVERLAYS: [&str; 2] = ["dev", "production"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every object of an overlay, as JSON values.
fn render(overlay: &str) -> Vec<Value> {
    let dir = root().join("deploy/k8s/overlays").join(overlay);
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .expect("kubectl is needed to render the manifests (apt install kubectl, or see deploy/README.md)");
    assert!(output.status.success(), "kustomize {overlay}: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).expect("utf-8");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).expect("a YAML object"))
        .filter(|v| !v.is_null())
        .collect()
}

fn kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// The pod templates of Deployments and Jobs, by object name.
fn pod_specs(objects: &[Value]) -> Vec<(&str, &Value)> {
    objects
        .iter()
        .filter_map(|o| match o["kind"].as_str() {
            Some("Deployment" | "Job") => Some((name(o), &o["spec"]["template"])),
            Some("CronJob") => Some((name(o), &o["spec"]["jobTemplate"]["spec"]["template"])),
            _ => None,
        })
        .collect()
}

/// (secret name, key) of every secretKeyRef in the pod templates.
fn secret_refs(objects: &[Value]) -> BTreeSet<(String, String)> {
    let mut refs = BTreeSet::new();
    for (_, template) in pod_specs(objects) {
        for container in template["spec"]["containers"].as_array().into_iter().flatten() {
            for env in container["env"].as_array().into_iter().flatten() {
                let reference = &env["valueFrom"]["secretKeyRef"];
                if !reference.is_null() {
                    refs.insert((text(&reference["name"]).to_owned(), text(&reference["key"]).to_owned()));
                }
            }
        }
    }
    refs
}

fn env_value<'a>(container: &'a Value, variable: &str) -> Option<&'a str> {
    container["env"].as_array()?.iter().find(|e| e["name"] == variable).and_then(|e| e["value"].as_str())
}

/// The longest `drain_timeout_secs` in the shared settings file.
fn drain_secs(objects: &[Value]) -> u64 {
    let config = kind(objects, "ConfigMap").into_iter().find(|c| name(c) == "propdesk-config").expect("config map");
    let toml = text(&config["data"]["propdesk.toml"]);
    toml.lines()
        .filter_map(|line| line.trim().strip_prefix("drain_timeout_secs"))
        .filter_map(|rest| rest.trim_start_matches([' ', '=']).trim().parse::<u64>().ok())
        .max()
        .expect("drain_timeout_secs in propdesk.toml")
}

#[test]
fn every_deployment_has_probes_resources_a_security_context_and_time_to_drain() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let deployments = kind(&objects, "Deployment");
        let names: BTreeSet<&str> = deployments.iter().map(|d| name(d)).collect();
        assert_eq!(names, BTreeSet::from(["propdesk-intake", "propdesk-dispatch", "propdesk-notifier"]), "{overlay}");
        let drain = drain_secs(&objects);
        for deployment in deployments {
            let what = format!("{overlay}/{}", name(deployment));
            let pod = &deployment["spec"]["template"]["spec"];
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{what}");
            let pre_stop: u64 = pod["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["lifecycle"]["preStop"]["sleep"]["seconds"].as_u64())
                .max()
                .unwrap_or(0);
            let grace = pod["terminationGracePeriodSeconds"].as_u64().expect("terminationGracePeriodSeconds");
            assert!(grace > drain + pre_stop, "{what}: grace {grace}s must cover preStop {pre_stop}s + drain {drain}s");
            for container in pod["containers"].as_array().expect("containers") {
                let ports: BTreeSet<u64> = container["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["containerPort"].as_u64())
                    .collect();
                // Readiness asks for the dependencies, liveness only for the process: an
                // outage of the database or broker must not restart every pod.
                for (probe, service) in [("readinessProbe", "readiness"), ("livenessProbe", "liveness")] {
                    let port = container[probe]["grpc"]["port"].as_u64();
                    assert!(
                        port.is_some_and(|p| ports.contains(&p)),
                        "{what}: {probe} is a gRPC health check on a declared port"
                    );
                    assert_eq!(container[probe]["grpc"]["service"], service, "{what}: {probe}");
                }
                // The process listens where the probe looks.
                let probe_port = container["readinessProbe"]["grpc"]["port"].as_u64().unwrap_or_default();
                let listen = [
                    "PROPDESK__INTAKE__LISTEN",
                    "PROPDESK__DISPATCH__HEALTH_LISTEN",
                    "PROPDESK__NOTIFIER__HEALTH_LISTEN",
                ]
                .iter()
                .find_map(|v| env_value(container, v))
                .unwrap_or_default();
                assert_eq!(listen, format!("0.0.0.0:{probe_port}"), "{what}: health listen address");
                let metrics = env_value(container, "PROPDESK__METRICS__LISTEN").unwrap_or_default();
                let metrics_port: u64 = metrics.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_default();
                assert!(ports.contains(&metrics_port), "{what}: the metrics port {metrics} is declared");
                for (bound, resource) in
                    [("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory")]
                {
                    assert!(!container["resources"][bound][resource].is_null(), "{what}: resources.{bound}.{resource}");
                }
                let security = &container["securityContext"];
                assert_eq!(security["allowPrivilegeEscalation"], false, "{what}");
                assert_eq!(security["readOnlyRootFilesystem"], true, "{what}");
                assert!(
                    security["capabilities"]["drop"].as_array().is_some_and(|d| d.contains(&Value::from("ALL"))),
                    "{what}"
                );
            }
        }
    }
}

#[test]
fn autoscalers_budgets_and_services_point_at_what_exists() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let deployments: BTreeMap<&str, &Value> =
            kind(&objects, "Deployment").into_iter().map(|d| (name(d), d)).collect();
        let authentications: BTreeSet<&str> = kind(&objects, "TriggerAuthentication").into_iter().map(name).collect();
        let scaled = kind(&objects, "ScaledObject");
        assert_eq!(scaled.len(), 2, "{overlay}: dispatch and notifier scale on their queues");
        for object in scaled {
            let target = text(&object["spec"]["scaleTargetRef"]["name"]);
            let deployment =
                deployments.get(target).unwrap_or_else(|| panic!("{overlay}: ScaledObject targets {target}"));
            // The queue a worker consumes is `<bus.prefix>.<its subcommand>` (prefix: the default).
            let role = text(&deployment["spec"]["template"]["spec"]["containers"][0]["args"][0]);
            for trigger in object["spec"]["triggers"].as_array().expect("triggers") {
                assert_eq!(trigger["type"], "rabbitmq");
                assert_eq!(text(&trigger["metadata"]["queueName"]), format!("propdesk.{role}"), "{overlay}/{target}");
                assert_eq!(
                    trigger["metadata"]["protocol"], "http",
                    "counting unacked messages needs the management API"
                );
                assert!(authentications.contains(text(&trigger["authenticationRef"]["name"])), "{overlay}/{target}");
            }
        }
        for hpa in kind(&objects, "HorizontalPodAutoscaler") {
            assert!(deployments.contains_key(text(&hpa["spec"]["scaleTargetRef"]["name"])), "{overlay}: HPA target");
        }
        let pod_labels = |d: &&Value| d["spec"]["template"]["metadata"]["labels"].clone();
        for pdb in kind(&objects, "PodDisruptionBudget") {
            let wanted = pdb["spec"]["selector"]["matchLabels"].as_object().expect("matchLabels");
            let matches = deployments.values().filter(|d| wanted.iter().all(|(k, v)| pod_labels(d)[k] == *v)).count();
            assert_eq!(matches, 1, "{overlay}: PDB {} selects one Deployment", name(pdb));
        }
        for service in kind(&objects, "Service") {
            let wanted = service["spec"]["selector"].as_object().expect("selector");
            let selected: Vec<&&Value> =
                deployments.values().filter(|d| wanted.iter().all(|(k, v)| pod_labels(d)[k] == *v)).collect();
            assert!(!selected.is_empty(), "{overlay}: Service {} selects pods", name(service));
            for port in service["spec"]["ports"].as_array().expect("ports") {
                let target = text(&port["targetPort"]);
                for deployment in &selected {
                    let named = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
                        .as_array()
                        .is_some_and(|ports| ports.iter().any(|p| p["name"] == target));
                    assert!(named, "{overlay}: Service {} port {target} on {}", name(service), name(deployment));
                }
            }
        }
        let monitors = kind(&objects, "ServiceMonitor");
        assert_eq!(monitors.len(), 1, "{overlay}");
        let wanted = monitors[0]["spec"]["selector"]["matchLabels"].as_object().expect("matchLabels");
        let scraped =
            kind(&objects, "Service").into_iter().any(|s| wanted.iter().all(|(k, v)| s["metadata"]["labels"][k] == *v));
        assert!(scraped, "{overlay}: the ServiceMonitor selects the metrics Service");
        assert_eq!(kind(&objects, "Service").iter().filter(|s| name(s) == "propdesk-metrics").count(), 1);
        let metrics_pods = deployments.values().filter(|d| pod_labels(d)["propdesk/metrics"] == "true").count();
        assert_eq!(metrics_pods, 3, "{overlay}: every process is scraped");
    }
}

#[test]
fn the_migration_job_and_the_secrets_are_referenced_consistently() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let jobs = kind(&objects, "Job");
        assert_eq!(jobs.len(), 1, "{overlay}: one migration Job");
        let job = jobs[0]["spec"]["template"]["spec"]["containers"][0].clone();
        assert_eq!(job["args"], serde_json::json!(["migrate"]));
        let images: BTreeSet<&str> = pod_specs(&objects)
            .iter()
            .flat_map(|(_, t)| t["spec"]["containers"].as_array().into_iter().flatten())
            .map(|c| text(&c["image"]))
            .collect();
        assert_eq!(images.len(), 1, "{overlay}: the Job migrates with the image it rolls out: {images:?}");
        let refs = secret_refs(&objects);
        let secret_names: BTreeSet<&str> = refs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(secret_names, BTreeSet::from(["propdesk-secrets"]), "{overlay}");
        let database = ("propdesk-secrets".to_owned(), "database-url".to_owned());
        assert!(refs.contains(&database));
        let mut needed: BTreeSet<(String, String)> = refs.clone();
        for auth in kind(&objects, "TriggerAuthentication") {
            for target in auth["spec"]["secretTargetRef"].as_array().into_iter().flatten() {
                needed.insert((text(&target["name"]).to_owned(), text(&target["key"]).to_owned()));
            }
        }
        let secrets = kind(&objects, "Secret");
        match overlay {
            // Production keeps every secret outside the repository.
            "production" => assert!(secrets.is_empty(), "no secret is committed for production"),
            _ => {
                for (secret, key) in &needed {
                    let found = secrets
                        .iter()
                        .find(|s| name(s) == secret)
                        .unwrap_or_else(|| panic!("{overlay}: Secret {secret}"));
                    let has = !found["data"][key].is_null() || !found["stringData"][key].is_null();
                    assert!(has, "{overlay}: Secret {secret} has {key}");
                }
            }
        }
    }
}

#[test]
fn the_image_runs_the_binary_with_the_subcommands_the_manifests_use() {
    let dockerfile = std::fs::read_to_string(root().join("deploy/Dockerfile")).expect("deploy/Dockerfile");
    assert!(dockerfile.contains("--bin propdesk"), "the image builds the propdesk binary");
    assert!(dockerfile.contains(r#"ENTRYPOINT ["/usr/local/bin/propdesk"]"#));
    let user = dockerfile.lines().find_map(|l| l.strip_prefix("USER ")).expect("USER").trim().to_owned();
    let exposed: BTreeSet<u64> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(|l| l.split_whitespace().map(|p| p.parse::<u64>().expect("port")).collect::<Vec<_>>())
        .collect();
    for overlay in OVERLAYS {
        let objects = render(overlay);
        for (owner, template) in pod_specs(&objects) {
            let pod = &template["spec"];
            let uid = pod["securityContext"]["runAsUser"].as_u64().expect("runAsUser");
            assert_eq!(user, format!("{uid}:{uid}"), "{overlay}/{owner}: the image's user is the pod's");
            for container in pod["containers"].as_array().expect("containers") {
                let subcommand = text(&container["args"][0]);
                let help = Command::new(env!("CARGO_BIN_EXE_propdesk"))
                    .args([subcommand, "--help"])
                    .output()
                    .expect("propdesk");
                assert!(help.status.success(), "{overlay}/{owner}: `propdesk {subcommand}` is a subcommand");
                for port in container["ports"].as_array().into_iter().flatten() {
                    let port = port["containerPort"].as_u64().unwrap_or_default();
                    assert!(exposed.contains(&port), "{overlay}/{owner}: port {port} is exposed by the image");
                }
            }
        }
    }
}

#[test]
fn the_intake_keeps_attachments_in_s3_with_keys_from_the_secret() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let (_, intake) = pod_specs(&objects)
            .into_iter()
            .find(|(name, _)| *name == "propdesk-intake")
            .unwrap_or_else(|| panic!("{overlay}: the intake Deployment"));
        let container = &intake["spec"]["containers"][0];
        let store = env_value(container, "PROPDESK__ATTACHMENTS__STORE").unwrap_or_default();
        assert!(store.starts_with("s3://"), "{overlay}: attachments in a bucket, not on a pod's disk: {store:?}");
        assert!(env_value(container, "PROPDESK__ATTACHMENTS__S3__ENDPOINT").is_some_and(|e| e.starts_with("http")));
        for (variable, key) in [
            ("PROPDESK__ATTACHMENTS__S3__ACCESS_KEY_ID", "s3-access-key-id"),
            ("PROPDESK__ATTACHMENTS__S3__SECRET_ACCESS_KEY", "s3-secret-access-key"),
        ] {
            let entry = container["env"]
                .as_array()
                .and_then(|env| env.iter().find(|e| e["name"] == variable))
                .unwrap_or_else(|| panic!("{overlay}: {variable}"));
            assert_eq!(entry["valueFrom"]["secretKeyRef"]["key"], key, "{overlay}: {variable} from the Secret");
        }
    }
}

#[test]
fn browsers_reach_the_intake_over_tls_from_the_allowed_origins() {
    let objects = render("production");
    let ingresses = kind(&objects, "Ingress");
    assert_eq!(ingresses.len(), 1, "one Ingress for gRPC-Web");
    let ingress = ingresses[0];
    assert!(!ingress["spec"]["tls"][0]["secretName"].is_null(), "TLS ends at the Ingress");
    let backend = &ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"];
    let services: BTreeSet<&str> = kind(&objects, "Service").into_iter().map(name).collect();
    assert!(services.contains(text(&backend["name"])), "the Ingress routes to a Service that exists");
    assert_eq!(backend["port"]["name"], "grpc");
    let annotations = &ingress["metadata"]["annotations"];
    assert_eq!(annotations["nginx.ingress.kubernetes.io/backend-protocol"], "HTTP", "gRPC-Web is HTTP/1.1 POSTs");
    assert_eq!(annotations["nginx.ingress.kubernetes.io/proxy-body-size"], "11m", "uploads of 10 MiB fit");
    let (_, intake) = pod_specs(&objects).into_iter().find(|(n, _)| *n == "propdesk-intake").expect("intake");
    let origins = env_value(&intake["spec"]["containers"][0], "PROPDESK__INTAKE__ALLOWED_ORIGINS").unwrap_or_default();
    assert!(!origins.is_empty() && origins.split(',').all(|o| o.starts_with("https://")), "{origins}");
}

#[test]
fn production_staff_sign_in_through_the_identity_provider_only() {
    let objects = render("production");
    let (_, intake) = pod_specs(&objects).into_iter().find(|(n, _)| *n == "propdesk-intake").expect("intake");
    let container = &intake["spec"]["containers"][0];
    let issuer = env_value(container, "PROPDESK__AUTH__OIDC__ISSUER").unwrap_or_default();
    assert!(issuer.starts_with("https://"), "the provider over HTTPS: {issuer:?}");
    assert!(env_value(container, "PROPDESK__AUTH__OIDC__AUDIENCE").is_some_and(|a| !a.is_empty()));
    assert_eq!(env_value(container, "PROPDESK__AUTH__SHARED_SECRET_TOKENS"), Some("false"), "HS256 switched off");
}

#[test]
fn every_process_that_reads_the_database_has_the_personal_data_keys_from_the_secret() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        for (workload, spec) in pod_specs(&objects) {
            let container = &spec["spec"]["containers"][0];
            if !container["env"].as_array().into_iter().flatten().any(|e| e["name"] == "PROPDESK__DATABASE__URL") {
                continue;
            }
            for (variable, key) in [
                ("PROPDESK__PRIVACY__DATA_KEYS", "privacy-data-keys"),
                ("PROPDESK__PRIVACY__ACTIVE_KEY", "privacy-active-key"),
                ("PROPDESK__PRIVACY__INDEX_KEY", "privacy-index-key"),
            ] {
                let entry = container["env"]
                    .as_array()
                    .and_then(|env| env.iter().find(|e| e["name"] == variable))
                    .unwrap_or_else(|| panic!("{overlay}: {workload} lacks {variable}"));
                assert_eq!(entry["valueFrom"]["secretKeyRef"]["key"], key, "{overlay}: {workload}: {variable}");
            }
        }
    }
}

#[test]
fn a_nightly_cronjob_applies_the_retention_policy_one_run_at_a_time() {
    for overlay in OVERLAYS {
        let objects = render(overlay);
        let cronjobs = kind(&objects, "CronJob");
        assert_eq!(cronjobs.len(), 1, "{overlay}: the retention CronJob");
        let cronjob = cronjobs[0];
        assert_eq!(cronjob["spec"]["concurrencyPolicy"], "Forbid", "{overlay}: runs never overlap");
        assert_eq!(cronjob["spec"]["timeZone"], "Asia/Shanghai");
        let container = &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["args"], serde_json::json!(["retention"]));
    }
}
