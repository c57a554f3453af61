package otsectest_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/mdbridge/mdbridge/pollers/otsec/otsectest"
)

const benchQuery = `{"limit":10000,"page":1,"sortBy":"alertStarted","sortType":"desc"}`

// BenchmarkServeList measures the handler answering limit=10000 out of
// 10,000 device alerts (about 8 MB), without the network.
func BenchmarkServeList(b *testing.B) {
	s := otsectest.NewUnstartedHandler(otsectest.Options{})
	defer s.Close()
	s.Add(otsectest.StreamDeviceAlerts, site, sensor, 10000)
	req, _ := http.NewRequest("GET", otsectest.PathDeviceAlerts+"?"+sensorQuery(benchQuery).Encode(), nil)
	req.Header.Set("Authorization", "Bearer test-token")
	w := newRecorder()
	s.ServeHTTP(w, req)
	if w.status != 200 {
		b.Fatalf("status %d: %.200s", w.status, w.body.Bytes())
	}
	b.SetBytes(int64(w.body.Len()))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		w.reset()
		s.ServeHTTP(w, req)
		if i%1024 == 0 {
			s.ResetRequests()
		}
	}
}

// BenchmarkServeListHTTP is BenchmarkServeList over loopback HTTP with the
// standard client, the body read and discarded.
func BenchmarkServeListHTTP(b *testing.B) {
	s := otsectest.NewServer(otsectest.Options{})
	defer s.Close()
	s.Add(otsectest.StreamDeviceAlerts, site, sensor, 10000)
	u := s.URL + otsectest.PathDeviceAlerts + "?" + sensorQuery(benchQuery).Encode()
	c := s.Client()
	fetch := func() int64 {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Authorization", "Bearer test-token")
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("status %d, %v", resp.StatusCode, err)
		}
		return n
	}
	b.SetBytes(fetch())
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		fetch()
		if i%1024 == 0 {
			s.ResetRequests()
		}
	}
}

// BenchmarkGenerate measures making up and storing new records, the
// simulator's own cost at a live rate (mdload -rate): one op is one
// record, alternately a device and a Suricata alert.
func BenchmarkGenerate(b *testing.B) {
	s := otsectest.NewUnstartedHandler(otsectest.Options{})
	defer s.Close()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		stream := otsectest.StreamDeviceAlerts
		if i%2 == 1 {
			stream = otsectest.StreamSuricataAlerts
		}
		s.Add(stream, site, sensor, 1)
	}
}
