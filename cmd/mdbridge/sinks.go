package main

import (
	"fmt"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/configs"
	"github.com/mdbridge/mdbridge/pipeline"
	"github.com/mdbridge/mdbridge/sinks"
	"github.com/mdbridge/mdbridge/sinks/file"
	"github.com/mdbridge/mdbridge/sinks/nats"
	"github.com/mdbridge/mdbridge/sinks/syslog"
	"github.com/mdbridge/mdbridge/sinks/webhook"
)

// buildSink constructs the sink an instance of the config describes, and
// the options of its dispatcher.
func buildSink(name string, sc configs.SinkConfig, log *zap.Logger) (pipeline.Sink, pipeline.SinkOptions, error) {
	log = log.With(zap.String("sink", name))
	var (
		s   pipeline.Sink
		c   sinks.Common
		err error
	)
	switch {
	case sc.File != nil:
		s, err = file.New(*sc.File, log)
		c = sc.File.Common()
	case sc.NATS != nil:
		s, err = nats.New(*sc.NATS, log)
		c = sc.NATS.Common()
	case sc.Syslog != nil:
		s, err = syslog.New(*sc.Syslog, log)
		c = sc.Syslog.Common()
	case sc.Webhook != nil:
		s, err = webhook.New(*sc.Webhook, log)
		c = sc.Webhook.Common()
	default:
		return nil, pipeline.SinkOptions{}, fmt.Errorf("sinks.%s: type %q is not supported by this build", name, sc.Type)
	}
	if err != nil {
		return nil, pipeline.SinkOptions{}, fmt.Errorf("sinks.%s: %w", name, err)
	}
	return s, pipeline.SinkOptions{Batch: c.Batch, StartEarliest: c.Start == sinks.StartEarliest}, nil
}

// deadLetterDir is where the dead-letter files of a config's sinks live:
// beside the state file.
func deadLetterDir(cfg *configs.Config) string {
	return filepath.Join(filepath.Dir(cfg.State.Path), "deadletter")
}
