package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/state"
)

// adminServer serves /healthz (the process is alive), /readyz (state open
// and sinks started), /debug/pprof/, /status (streams and sinks as JSON; names,
// counters and errors only, never a credential) and /metrics (the same
// counters, the journal's size and the Go runtime, for Prometheus).
type adminServer struct {
	runner atomic.Pointer[pipeline.Runner]
	store  atomic.Pointer[state.Store]
	srv    *http.Server
	ln     net.Listener
}

// startAdmin listens on addr (none when empty); deliveries, when not nil,
// is served on /metrics beside the bridge's counters.
func startAdmin(addr string, log *zap.Logger, deliveries *deliveryHistogram) (*adminServer, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	a := &adminServer{ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		r := a.runner.Load()
		if r == nil || a.store.Load() == nil {
			http.Error(w, "not ready: state not open yet", http.StatusServiceUnavailable)
			return
		}
		if err := r.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		r := a.runner.Load()
		if r == nil {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r.Snapshot())
	})
	reg := newMetricsRegistry(a, deliveries)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: zap.NewStdLog(log)}))
	// Profiles, for diagnosing a running bridge; the admin address is
	// loopback by default.
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server stopped", zap.Error(err))
		}
	}()
	log.Info("admin server listening", zap.String("addr", ln.Addr().String()))
	return a, nil
}

// setRunner makes the runner, and the store it journals to, visible to
// /readyz, /status and /metrics.
func (a *adminServer) setRunner(r *pipeline.Runner, s *state.Store) {
	if a != nil {
		a.store.Store(s)
		a.runner.Store(r)
	}
}

func (a *adminServer) close() {
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = a.srv.Shutdown(ctx)
}
