package mdss

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
)

// StreamID is the ID of one of an instance's streams ("<instance>/scans",
// "<instance>/files"). Polling and the push receiver commit into the same
// IDs, so that a record pushed and then polled is recognised as seen.
func StreamID(instance, stream string) string { return instance + "/" + stream }

// Poller is one configured MDSS source. It implements pipeline.Poller with
// a fixed set of streams, the configured ones of scans and files. Close ends
// the API session.
type Poller struct {
	name      string
	cfg       Config
	client    *client
	dec       *decoder
	log       *zap.Logger
	publicURL string
	streams   []pipeline.Stream

	// skipped counts records left out for being broken (see Skipped).
	skipped atomic.Int64
}

// New returns a poller for the named source. cfg must have passed Validate.
func New(name string, cfg Config, log *zap.Logger) (*Poller, error) {
	log = log.With(zap.String("source", name))
	c, err := newClient(&cfg, log)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", name, err)
	}
	p := &Poller{name: name, cfg: cfg, client: c, dec: newDecoder(name, cfg.Fields), log: log, publicURL: publicURL(cfg.URL)}
	for _, s := range cfg.Streams {
		switch s {
		case StreamScans:
			p.streams = append(p.streams, &scanStream{p: p, id: StreamID(name, s)})
		case StreamFiles:
			p.streams = append(p.streams, &fileStream{p: p, id: StreamID(name, s), complete: map[string]scanMark{}})
		default:
			return nil, fmt.Errorf("source %s: streams: unknown stream %q", name, s)
		}
	}
	return p, nil
}

// publicURL is the appliance's URL without credentials, query or fragment.
func publicURL(raw string) string {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil {
		return ""
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// Name implements pipeline.Poller.
func (p *Poller) Name() string { return p.name }

// Streams implements pipeline.Poller; the set never changes.
func (p *Poller) Streams(context.Context) ([]pipeline.Stream, error) { return p.streams, nil }

// Close logs the API session out (user and password mode), within a few
// seconds, and drops idle connections. Call it once the runner has stopped.
func (p *Poller) Close() error {
	if err := p.client.close(); err != nil {
		return fmt.Errorf("source %s: %w", p.name, err)
	}
	return nil
}

// Skipped is how many broken records the streams have left out so far (a
// record polled again is counted again). Each is also logged.
func (p *Poller) Skipped() int64 { return p.skipped.Load() }

// Session counts the authentications, refreshes and logouts of the API
// session so far (all zero in API-key mode).
func (p *Poller) Session() (authentications, refreshes, logouts int64) {
	if s := p.client.sess; s != nil {
		return s.authentications.Load(), s.refreshes.Load(), s.logouts.Load()
	}
	return 0, 0, 0
}

// listScans reads the scan list page by page until a short page, the
// reported total or max_pages. Order is not relied on. gap is a lower bound
// of the scans left unread when max_pages stopped it.
func (p *Poller) listScans(ctx context.Context) (items []gjson.Result, gap int, err error) {
	return p.list(ctx, "", "scans")
}

// listFiles reads the file list of one scan like listScans.
func (p *Poller) listFiles(ctx context.Context, scanID string) (items []gjson.Result, gap int, err error) {
	return p.list(ctx, scanID, "files of scan "+scanID)
}

func (p *Poller) list(ctx context.Context, scanID, what string) ([]gjson.Result, int, error) {
	tmpl := p.cfg.Paths.Scans
	if scanID != "" {
		tmpl = p.cfg.Paths.Files
	}
	size := p.cfg.PageSize
	var all []gjson.Result
	for page := 0; page < p.cfg.MaxPages; page++ {
		path := listPath(tmpl, page*size, size, scanID)
		doc, err := p.client.getJSON(ctx, path)
		if err != nil {
			return nil, 0, err
		}
		items, total, err := DecodeList(doc)
		if err != nil {
			return nil, 0, fmt.Errorf("GET %s: %w", path, err)
		}
		all = append(all, items...)
		if len(items) < size || total >= 0 && (page+1)*size >= total {
			return all, 0, nil
		}
		if page == p.cfg.MaxPages-1 {
			gap := 1
			if total > 0 {
				gap = max(1, total-(page+1)*size)
			}
			p.log.Warn("max_pages reached before the end of a list; raise max_pages or page_size",
				zap.String("list", what), zap.Int("read", len(all)), zap.Int("total", total), zap.Int("max_pages", p.cfg.MaxPages))
			return all, gap, nil
		}
	}
	return all, 0, nil
}
