package otsec

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/mdbridge/mdbridge/pipeline"
)

// Poller is one configured OT Security source. It implements
// pipeline.Poller: its streams are the configured stream names for every
// site and sensor, from the static `sites` list or discovered from
// managements/components.
type Poller struct {
	name      string
	cfg       Config
	client    *client
	log       *zap.Logger
	publicURL string
	bodies    *pipeline.BufferPool // response bodies, reused between polls
}

// New returns a poller for the named source. cfg must have passed Validate.
func New(name string, cfg Config, log *zap.Logger) (*Poller, error) {
	log = log.With(zap.String("source", name))
	c, err := newClient(&cfg, log)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", name, err)
	}
	u, _ := url.Parse(cfg.URL)
	u.User = nil
	u.RawQuery = ""
	return &Poller{name: name, cfg: cfg, client: c, log: log, publicURL: u.String(), bodies: pipeline.NewBufferPool(2, 64<<20)}, nil
}

// Name implements pipeline.Poller.
func (p *Poller) Name() string { return p.name }

// PublicURL is the Enterprise Manager's URL without credentials or query,
// as events name it in source.url.
func (p *Poller) PublicURL() string { return p.publicURL }

// Streams implements pipeline.Poller.
func (p *Poller) Streams(ctx context.Context) ([]pipeline.Stream, error) {
	sites := p.cfg.Sites
	if len(sites) == 0 {
		var err error
		if sites, err = p.Discover(ctx); err != nil {
			return nil, err
		}
	}
	var out []pipeline.Stream
	bySite := map[int]bool{}
	for _, site := range sites {
		for _, name := range p.cfg.Streams {
			switch {
			case name == StreamDevices && site.SiteID > 0:
				// One inventory for the whole site, however many of its
				// sensors are listed.
				if !bySite[site.SiteID] {
					bySite[site.SiteID] = true
					out = append(out, newSetStream(p, name, site.SiteIP, "", site.SiteID))
				}
			case setSpecs[name].path != "":
				out = append(out, newSetStream(p, name, site.SiteIP, site.SensorIP, 0))
			default:
				out = append(out, newStream(p, name, site.SiteIP, site.SensorIP))
			}
		}
	}
	return out, nil
}

// list GETs a list endpoint into buf's storage and decodes its records,
// passing over those match recognises (nil: none); it returns the buffer
// now holding the body.
func (p *Poller) list(ctx context.Context, path string, q url.Values, buf []byte, match pipeline.ElementMatcher) (page, []byte, error) {
	pg, body, err := p.client.getList(ctx, path, q, buf, match)
	if body != nil {
		buf = body
	}
	return pg, buf, err
}

// Discover lists every site and sensor from managements/components.
func (p *Poller) Discover(ctx context.Context) ([]Site, error) {
	data, _, err := p.client.get(ctx, PathComponents, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("discover sites: %w", err)
	}
	items, _, err := DecodeList(data)
	if err != nil {
		return nil, fmt.Errorf("discover sites: %w", err)
	}
	var sites []Site
	for i, it := range items {
		site := pipeline.Str(firstOf(it, "siteIp", "siteIP", "site_ip", "ip"))
		if site == "" {
			return nil, fmt.Errorf("discover sites: component %d has no siteIp", i)
		}
		sensors := firstOf(it, "sensorIps", "sensorIPs", "sensor_ips", "sensors")
		if !sensors.IsArray() {
			return nil, fmt.Errorf("discover sites: component %d (site %s) has no sensorIps list", i, site)
		}
		for _, s := range sensors.Array() {
			ip := pipeline.Str(s)
			if ip == "" && s.IsObject() {
				ip = pipeline.Str(firstOf(s, "ip", "sensorIp"))
			}
			if ip != "" {
				sites = append(sites, Site{SiteIP: site, SensorIP: ip})
			}
		}
	}
	slices.SortFunc(sites, func(a, b Site) int {
		return strings.Compare(a.SiteIP+"/"+a.SensorIP, b.SiteIP+"/"+b.SensorIP)
	})
	return sites, nil
}

func firstOf(r gjson.Result, keys ...string) gjson.Result {
	for _, k := range keys {
		if v := r.Get(k); v.Exists() {
			return v
		}
	}
	return gjson.Result{}
}
