package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/mdbridge/mdbridge/configs"
	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

// The deploy/ folder, from this package's directory.
const deployDir = "../../deploy"

func readDeploy(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// yamlDocs decodes every document of a YAML stream.
func yamlDocs(t *testing.T, rel string) []map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readDeploy(t, rel)))
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
}

// dig walks nested maps and lists: a string key indexes a map, an int a
// list. It returns nil when a step is missing.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func digString(v any, path ...any) string {
	s, _ := dig(v, path...).(string)
	return s
}

// kubeObjects reads every manifest of deploy/kubernetes, by kind and name.
func kubeObjects(t *testing.T) map[string]map[string]any {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(deployDir, "kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes: %v", err)
	}
	objs := map[string]map[string]any{}
	for _, f := range files {
		for _, d := range yamlDocs(t, filepath.Join("kubernetes", filepath.Base(f))) {
			kind, name := digString(d, "kind"), digString(d, "metadata", "name")
			if kind == "Kustomization" {
				name = "kustomization"
			}
			if kind == "" || name == "" {
				t.Fatalf("%s: a document without kind or metadata.name", f)
			}
			objs[kind+"/"+name] = d
		}
	}
	return objs
}

// TestDeployKubernetes checks the manifests a cluster would get: one
// replica replaced with Recreate, probes on /healthz and /readyz at the
// admin port the config listens on, a non-root read-only container with no
// capabilities, the state directory on the claim, and every ConfigMap,
// Secret and claim referenced exists.
func TestDeployKubernetes(t *testing.T) {
	objs := kubeObjects(t)
	dep := objs["Deployment/mdbridge"]
	if dep == nil {
		t.Fatalf("no Deployment mdbridge among %v", sortedKeys(objs))
	}
	pod := dig(dep, "spec", "template", "spec")
	c := dig(pod, "containers", 0)
	checks := []struct {
		what string
		got  any
		want any
	}{
		{"replicas", dig(dep, "spec", "replicas"), 1},
		{"strategy", digString(dep, "spec", "strategy", "type"), "Recreate"},
		{"liveness path", digString(c, "livenessProbe", "httpGet", "path"), "/healthz"},
		{"readiness path", digString(c, "readinessProbe", "httpGet", "path"), "/readyz"},
		{"liveness port", digString(c, "livenessProbe", "httpGet", "port"), "admin"},
		{"readiness port", digString(c, "readinessProbe", "httpGet", "port"), "admin"},
		{"admin containerPort", containerPort(c, "admin"), 9464},
		{"pod runAsNonRoot", dig(pod, "securityContext", "runAsNonRoot"), true},
		{"container runAsNonRoot", dig(c, "securityContext", "runAsNonRoot"), true},
		{"readOnlyRootFilesystem", dig(c, "securityContext", "readOnlyRootFilesystem"), true},
		{"allowPrivilegeEscalation", dig(c, "securityContext", "allowPrivilegeEscalation"), false},
		{"capabilities drop", fmt.Sprint(dig(c, "securityContext", "capabilities", "drop")), "[ALL]"},
		{"seccomp", digString(pod, "securityContext", "seccompProfile", "type"), "RuntimeDefault"},
		{"memory limit set", dig(c, "resources", "limits", "memory") != nil, true},
		{"cpu request set", dig(c, "resources", "requests", "cpu") != nil, true},
		{"state on a claim", volumeSource(pod, mountedVolume(c, "/var/lib/mdbridge"), "persistentVolumeClaim", "claimName"), "mdbridge-state"},
		{"config from the ConfigMap", volumeSource(pod, mountedVolume(c, "/etc/mdbridge"), "configMap", "name"), "mdbridge-config"},
		{"secrets from the Secret", volumeSource(pod, mountedVolume(c, "/var/run/secrets/mdbridge"), "secret", "secretName"), "mdbridge-secrets"},
		{"config path", fmt.Sprint(dig(c, "args")), "[run -c /etc/mdbridge/config.yaml]"},
		{"the claim exists", objs["PersistentVolumeClaim/mdbridge-state"] != nil, true},
		{"the ConfigMap exists", objs["ConfigMap/mdbridge-config"] != nil, true},
		{"the Secret exists", objs["Secret/mdbridge-secrets"] != nil, true},
		{"the Service targets admin", digString(objs["Service/mdbridge"], "spec", "ports", 0, "targetPort"), "admin"},
	}
	for _, ck := range checks {
		if fmt.Sprint(ck.got) != fmt.Sprint(ck.want) {
			t.Errorf("Deployment: %s = %v, want %v", ck.what, ck.got, ck.want)
		}
	}
	// kubectl apply -k applies what the kustomization lists: all of it.
	files, _ := filepath.Glob(filepath.Join(deployDir, "kubernetes", "*.yaml"))
	var listed []string
	for _, r := range dig(objs["Kustomization/kustomization"], "resources").([]any) {
		listed = append(listed, r.(string))
	}
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !slices.Contains(listed, b) {
			t.Errorf("kustomization.yaml does not list %s", b)
		}
	}
}

func containerPort(c any, name string) any {
	ports, _ := dig(c, "ports").([]any)
	for _, p := range ports {
		if digString(p, "name") == name {
			return dig(p, "containerPort")
		}
	}
	return nil
}

// mountedVolume is the name of the volume mounted at path.
func mountedVolume(c any, path string) string {
	ms, _ := dig(c, "volumeMounts").([]any)
	for _, m := range ms {
		if digString(m, "mountPath") == path {
			return digString(m, "name")
		}
	}
	return ""
}

// volumeSource reads field of the pod volume's source of the given type.
func volumeSource(pod any, volume, typ, field string) string {
	vs, _ := dig(pod, "volumes").([]any)
	for _, v := range vs {
		if digString(v, "name") == volume && volume != "" {
			return digString(v, typ, field)
		}
	}
	return ""
}

// TestDeployCompose checks that the compose file has the bridge and the
// four things it talks to, mounts the config the test below validates and
// keeps the state in a volume.
func TestDeployCompose(t *testing.T) {
	docs := yamlDocs(t, "docker-compose.yml")
	if len(docs) != 1 {
		t.Fatalf("docker-compose.yml holds %d documents, want 1", len(docs))
	}
	services, _ := dig(docs[0], "services").(map[string]any)
	for _, s := range []string{"mdbridge", "nats", "rsyslog", "mdsim", "soar"} {
		if services[s] == nil {
			t.Errorf("docker-compose.yml has no service %s (has %v)", s, sortedKeys(services))
		}
	}
	br := services["mdbridge"]
	vols := fmt.Sprint(dig(br, "volumes"))
	for _, want := range []string{"./compose/mdbridge.yaml:/etc/mdbridge/config.yaml:ro", "mdbridge-state:/var/lib/mdbridge"} {
		if !strings.Contains(vols, want) {
			t.Errorf("service mdbridge volumes %s lack %s", vols, want)
		}
	}
	if got := fmt.Sprint(dig(services, "nats", "command")); !strings.Contains(got, "-js") {
		t.Errorf("nats command %s lacks -js (JetStream)", got)
	}
	if got := dig(br, "read_only"); got != true {
		t.Errorf("service mdbridge read_only = %v, want true", got)
	}
	// Every file the services mount from beside the compose file exists.
	for name, s := range services {
		l, _ := dig(s, "volumes").([]any)
		for _, v := range l {
			if src, _, ok := strings.Cut(fmt.Sprint(v), ":"); ok && strings.HasPrefix(src, "./") {
				if _, err := os.Stat(filepath.Join(deployDir, src)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			}
		}
	}
}

// TestDeployRsyslogConf has rsyslogd check the compose file's rsyslog
// configuration.
func TestDeployRsyslogConf(t *testing.T) {
	tool := deployTool(t, "rsyslogd")
	if tool == "" {
		t.Skip("rsyslogd not installed: deploy/compose/rsyslog.conf was not checked")
	}
	out, err := exec.Command(tool, "-N1", "-f", filepath.Join(deployDir, "compose", "rsyslog.conf")).CombinedOutput()
	if err != nil {
		t.Errorf("rsyslogd -N1: %v\n%s", err, out)
	}
}

// deployTool is the path of a program that checks a deploy file, or ""
// when it is not installed; CI sets MDBTEST_REQUIRE_DEPLOY_TOOLS=1 to
// fail instead.
func deployTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil && os.Getenv("MDBTEST_REQUIRE_DEPLOY_TOOLS") == "1" {
		t.Fatalf("%s is required (MDBTEST_REQUIRE_DEPLOY_TOOLS=1) but missing: %v", name, err)
	}
	return p
}

// composeEnv is the environment compose gives the bridge: each variable of
// the mdbridge service with the default its ${VAR:-default} names.
func composeEnv(t *testing.T) []string {
	t.Helper()
	env, _ := dig(yamlDocs(t, "docker-compose.yml")[0], "services", "mdbridge", "environment").(map[string]any)
	if len(env) == 0 {
		t.Fatal("service mdbridge has no environment")
	}
	def := regexp.MustCompile(`^\$\{[A-Z_]+:-(.*)\}$`)
	var out []string
	for k, v := range env {
		m := def.FindStringSubmatch(fmt.Sprint(v))
		if m == nil {
			t.Fatalf("service mdbridge: %s = %v, want ${VAR:-default}", k, v)
		}
		out = append(out, k+"="+m[1])
	}
	return out
}

// TestDeployConfigsValidate loads the compose and Kubernetes configs as
// `mdbridge validate` does, with what each deployment provides: compose's
// environment, and the Kubernetes Secret's keys as the files the config
// names. Both must use all four sink types.
func TestDeployConfigsValidate(t *testing.T) {
	t.Run("compose", func(t *testing.T) {
		cfg, err := configs.Load(filepath.Join(deployDir, "compose", "mdbridge.yaml"), composeEnv(t))
		if err != nil {
			t.Fatalf("deploy/compose/mdbridge.yaml with compose's environment: %v", err)
		}
		checkAllSinkTypes(t, cfg)
	})
	t.Run("kubernetes", func(t *testing.T) {
		objs := kubeObjects(t)
		conf := digString(objs["ConfigMap/mdbridge-config"], "data", "config.yaml")
		if conf == "" {
			t.Fatal("ConfigMap mdbridge-config has no config.yaml")
		}
		secrets, _ := dig(objs["Secret/mdbridge-secrets"], "stringData").(map[string]any)
		dir := t.TempDir()
		for k, v := range secrets {
			if err := os.WriteFile(filepath.Join(dir, k), []byte(fmt.Sprint(v)), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		conf = strings.ReplaceAll(conf, "/var/run/secrets/mdbridge/", dir+"/")
		path := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := configs.Load(path, nil)
		if err != nil {
			t.Fatalf("the ConfigMap's config.yaml with the Secret's files: %v", err)
		}
		checkAllSinkTypes(t, cfg)
		// The kubelet reaches the probes on the pod IP, not loopback.
		if cfg.Admin.Listen != "0.0.0.0:9464" {
			t.Errorf("admin.listen = %q, want 0.0.0.0:9464 (the probes' port, on every interface)", cfg.Admin.Listen)
		}
	})
}

func checkAllSinkTypes(t *testing.T, cfg *configs.Config) {
	t.Helper()
	var types []string
	for _, s := range cfg.Sinks {
		types = append(types, s.Type)
	}
	slices.Sort(types)
	if got, want := strings.Join(types, ","), "file,nats,syslog,webhook"; got != want {
		t.Errorf("sink types %s, want %s", got, want)
	}
}

// unitFile parses a systemd unit: section -> key -> values in order.
func unitFile(t *testing.T, b []byte) map[string]map[string][]string {
	t.Helper()
	out := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("mdbridge.service:%d: not key=value in a section: %q", n, line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	return out
}

// TestDeploySystemdUnit checks the unit's hardening and stop timeout, and
// has systemd-analyze verify it where systemd is installed.
func TestDeploySystemdUnit(t *testing.T) {
	b := readDeploy(t, "systemd/mdbridge.service")
	svc := unitFile(t, b)["Service"]
	want := map[string]string{
		"Type": "simple", "User": "mdbridge", "StateDirectory": "mdbridge", "StateDirectoryMode": "0700",
		"ConfigurationDirectory": "mdbridge", "Restart": "on-failure", "NoNewPrivileges": "yes",
		"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
		"ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
		"ProtectControlGroups": "yes", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"RestrictNamespaces": "yes", "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
		"SystemCallFilter": "@system-service", "CapabilityBoundingSet": "", "UMask": "0077",
		"Environment": "MDBRIDGE_STATE__PATH=/var/lib/mdbridge/mdbridge.db",
	}
	for k, v := range want {
		if !slices.Contains(svc[k], v) {
			t.Errorf("[Service] %s = %q, want %q among them", k, svc[k], v)
		}
	}
	if got := svc["ExecStart"]; len(got) != 1 || !strings.HasSuffix(got[0], " run -c /etc/mdbridge/config.yaml") {
		t.Errorf("ExecStart = %q, want one mdbridge run -c /etc/mdbridge/config.yaml", got)
	}
	// The runner gives in-flight deliveries 10 s after SIGTERM.
	if len(svc["TimeoutStopSec"]) != 1 {
		t.Fatalf("TimeoutStopSec = %q, want one", svc["TimeoutStopSec"])
	}
	if d, err := time.ParseDuration(svc["TimeoutStopSec"][0]); err != nil || d <= 10*time.Second || d > time.Minute {
		t.Errorf("TimeoutStopSec = %s (%v), want a little over the 10 s drain", svc["TimeoutStopSec"][0], err)
	}

	tool := deployTool(t, "systemd-analyze")
	if tool == "" {
		t.Skip("systemd-analyze not installed: the unit's syntax was not verified by systemd")
	}
	// verify insists that ExecStart's binary exists: point it at this test
	// binary, in a unit of the same name.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "mdbridge.service")
	if err := os.WriteFile(unit, bytes.ReplaceAll(b, []byte("/usr/local/bin/mdbridge"), []byte(self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, "verify", unit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// Exposure as systemd rates it (0 best, 10 worst): keep it at 2.0 or
	// below. Older systemd has no --offline; then this is only logged.
	out, err = exec.Command(tool, "security", "--offline=yes", "--threshold=20", unit).CombinedOutput()
	last := string(bytes.TrimSpace(out))
	if i := strings.LastIndexByte(last, '\n'); i >= 0 {
		last = last[i+1:]
	}
	switch {
	case err != nil && strings.Contains(string(out), "Overall exposure level"):
		t.Errorf("systemd-analyze security: exposure above 2.0: %s", last)
	case err != nil:
		t.Logf("systemd-analyze security --offline not available: %v %s", err, last)
	default:
		t.Logf("systemd-analyze security: %s", last)
	}
}

// dashboardExprs returns every query expression of the Grafana dashboard,
// after checking its shape: a Prometheus data source variable that every
// panel uses, and the panels the issue asks for.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	var d struct {
		SchemaVersion int `json:"schemaVersion"`
		Templating    struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(readDeploy(t, "grafana/mdbridge-dashboard.json"), &d); err != nil {
		t.Fatalf("mdbridge-dashboard.json: %v", err)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d, want 36 or later", d.SchemaVersion)
	}
	hasDS := false
	for _, v := range d.Templating.List {
		hasDS = hasDS || (v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus")
	}
	if !hasDS {
		t.Error("no Prometheus data source variable named datasource")
	}
	var exprs, titles []string
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		titles = append(titles, p.Title)
		if p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: data source %q with %d queries, want ${datasource} and at least one", p.Title, p.Datasource.UID, len(p.Targets))
		}
		for _, q := range p.Targets {
			exprs = append(exprs, q.Expr)
		}
	}
	for _, w := range []string{"Events/s by kind", "Stream lag", "Poll errors/s", "Polls/s", "Sink backlog", "Delivered events/s",
		"Retries/s", "Dead-lettered", "Sink state", "Delivery latency p50 / p99", "Journal bytes", "Journal entries"} {
		if !slices.Contains(titles, w) {
			t.Errorf("no panel %q (have %q)", w, titles)
		}
	}
	return exprs
}

// alertExprs returns every rule's expression, after checking that the
// rules the issue asks for are there, each with a severity and a summary.
func alertExprs(t *testing.T) []string {
	t.Helper()
	docs := yamlDocs(t, "prometheus/mdbridge-alerts.yml")
	var exprs, names []string
	groups, _ := dig(docs[0], "groups").([]any)
	for _, g := range groups {
		rules, _ := dig(g, "rules").([]any)
		for _, r := range rules {
			name := digString(r, "alert")
			names = append(names, name)
			exprs = append(exprs, digString(r, "expr"))
			if digString(r, "expr") == "" || digString(r, "labels", "severity") == "" || digString(r, "annotations", "summary") == "" {
				t.Errorf("rule %s lacks an expr, a severity label or a summary", name)
			}
		}
	}
	for _, w := range []string{"MdbridgeDown", "MdbridgeStreamStalled", "MdbridgeStreamFailing", "MdbridgeSinkBacklogGrowing",
		"MdbridgeSinkDisabled", "MdbridgeDeadLetterNotEmpty"} {
		if !slices.Contains(names, w) {
			t.Errorf("no alert %s (have %v)", w, names)
		}
	}
	promtoolCheckRules(t, readDeploy(t, "prometheus/mdbridge-alerts.yml"), "mdbridge-alerts.yml")
	return exprs
}

// promtoolCheckRules has promtool parse a rules file, where it is
// installed.
func promtoolCheckRules(t *testing.T, rules []byte, what string) {
	t.Helper()
	tool := deployTool(t, "promtool")
	if tool == "" {
		t.Logf("promtool not installed: the PromQL of %s was not parsed", what)
		return
	}
	path := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(path, rules, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules on %s: %v\n%s", what, err, out)
	}
}

// TestDeployDashboardPromQL has promtool parse every dashboard query, as
// recording rules with Grafana's variables replaced by what Grafana would
// put there.
func TestDeployDashboardPromQL(t *testing.T) {
	vars := strings.NewReplacer("$__rate_interval", "1m", "$__range", "6h", "$instance", ".*")
	var rules []map[string]string
	for i, e := range dashboardExprs(t) {
		rules = append(rules, map[string]string{"record": fmt.Sprintf("dashboard:query_%d", i), "expr": vars.Replace(e)})
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	promtoolCheckRules(t, b, "the dashboard's queries")
}

// TestDeployMetricsExist scrapes a running bridge and checks that every
// mdbridge_ metric the dashboard and the alert rules name is one it serves
// (histogram series by their family name), so a renamed metric cannot
// leave a panel empty or an alert silent.
func TestDeployMetricsExist(t *testing.T) {
	exprs := append(dashboardExprs(t), alertExprs(t)...)
	named := map[string]bool{}
	for _, e := range exprs {
		for _, m := range regexp.MustCompile(`mdbridge_[a-z_]+`).FindAllString(e, -1) {
			named[m] = true
		}
	}
	if len(named) < 15 {
		t.Fatalf("the dashboard and rules name only %d mdbridge metrics: %v", len(named), sortedKeys(named))
	}

	srv := otsectest.NewServer(otsectest.Options{Token: plantedToken})
	defer srv.Close()
	site := srv.Sites()[0]
	srv.Add("device_alerts", site.SiteIP, site.SensorIPs[0], 5)
	dir := t.TempDir()
	admin := freeAddr(t)
	cfg := writeConfig(t, fmt.Sprintf(`
state: { path: %s/s.db }
admin: { listen: %q }
sources:
  plant-a: { type: otsecurity, url: %q, token: %s, interval: 200ms, streams: [device_alerts] }
sinks:
  archive: { type: file, path: %s/events.jsonl }
`, dir, admin, srv.URL, plantedToken, dir))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"run", "-c", cfg}, io.Discard, io.Discard) }()
	defer func() {
		cancel()
		<-done
	}()
	var fams map[string]*dto.MetricFamily
	pollUntil(t, "5 delivered events on /metrics", func() bool {
		_, fams = scrapeMetrics(t, "http://"+admin+"/metrics")
		return fams != nil && sumFamily(fams["mdbridge_sink_delivered_total"]) == 5
	})
	for _, name := range sortedKeys(named) {
		family := name
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && fams[base].GetType() == dto.MetricType_HISTOGRAM {
				family = base
			}
		}
		if fams[family] == nil {
			t.Errorf("deploy/ names %s, which the bridge does not serve", name)
		}
	}
}
