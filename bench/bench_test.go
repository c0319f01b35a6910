package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestExpositionIsRealistic(t *testing.T) {
	t.Parallel()
	for _, size := range []int{10 << 10, 1 << 20} {
		body := exposition(size)
		if len(body) < size || len(body) > size+8<<10 {
			t.Fatalf("exposition(%d) is %d bytes", size, len(body))
		}
		if !bytes.Equal(body, exposition(size)) {
			t.Fatalf("exposition(%d) differs between calls; the target and the references would disagree", size)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("exposition(%d) does not parse: %v", size, err)
		}
		// HELP and TYPE open a family every ~50 samples.
		samples, sinceHeader, maxRun := 0, 0, 0
		sc := bufio.NewScanner(bytes.NewReader(body))
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "# TYPE") {
				sinceHeader = 0
				continue
			}
			if !strings.HasPrefix(sc.Text(), "#") {
				samples++
				sinceHeader++
				maxRun = max(maxRun, sinceHeader)
			}
		}
		if maxRun > 60 || samples/len(fams) < 40 {
			t.Fatalf("exposition(%d): %d samples in %d families, longest run without TYPE %d", size, samples, len(fams), maxRun)
		}
	}
}

func TestReferenceCheck(t *testing.T) {
	t.Parallel()
	plain := exposition(10 << 10)
	gz := gzipBytes(plain)
	var regz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&regz, gzip.BestSpeed)
	_, _ = zw.Write(plain)
	_ = zw.Close()
	broken := bytes.Clone(plain)
	broken[100] ^= 1
	tests := []struct {
		name      string
		ref       reference
		enc       string
		body      []byte
		reencoded bool
		wantErr   error
	}{
		{name: "identity as sent", ref: reference{plain: plain}, enc: "", body: plain},
		{name: "identity changed", ref: reference{plain: plain}, enc: "", body: broken, wantErr: errBodyMismatch},
		{name: "target's own gzip", ref: reference{plain: plain, gz: gz}, enc: "gzip", body: gz},
		{name: "recompressed", ref: reference{plain: plain, gz: gz}, enc: "gzip", body: regz.Bytes(), reencoded: true},
		{name: "decompressed on the way", ref: reference{plain: plain, gz: gz}, enc: "", body: plain, reencoded: true},
		{name: "gzip of a plain target", ref: reference{plain: plain}, enc: "gzip", body: regz.Bytes()},
		{name: "gzip of the wrong body", ref: reference{plain: plain}, enc: "gzip", body: gzipBytes(broken), wantErr: errBodyMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reencoded, err := tt.ref.check(tt.enc, tt.body, new(gzip.Reader), new(bytes.Buffer))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if reencoded != tt.reencoded {
				t.Fatalf("reencoded = %v, want %v", reencoded, tt.reencoded)
			}
		})
	}
}

func TestProcParsing(t *testing.T) {
	t.Parallel()
	stat := []byte("4242 (prometheus proxy) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 37 0 0 20 0 12 0 5000 1000000 3000 18446744073709551615\n")
	cpu, err := parseStatCPU(stat)
	if err != nil || cpu != 1870*time.Millisecond {
		t.Fatalf("parseStatCPU = %v, %v; want 1.87s (150 + 37 ticks)", cpu, err)
	}
	status := []byte("Name:\tprometheus-prox\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nRssAnon:\t    2048 kB\nThreads:\t12\n")
	m, err := parseStatus(status)
	if err != nil || m.rss != 10<<20 || m.peak != 20<<20 || m.anon != 2<<20 {
		t.Fatalf("parseStatus = %+v, %v; want rss 10 MiB, peak 20 MiB, anonymous 2 MiB", m, err)
	}
	if _, err := parseStatus([]byte("Name:\tx\nVmRSS:\t1 kB\n")); err == nil {
		t.Fatal("parseStatus accepted a status without VmHWM")
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	var lat []time.Duration
	for i := 100; i >= 1; i-- {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	for _, tt := range []struct {
		name string
		q    float64
		want time.Duration
	}{
		{name: "p50", q: 0.5, want: 50 * time.Millisecond},
		{name: "p99", q: 0.99, want: 99 * time.Millisecond},
		{name: "max", q: 1, want: 100 * time.Millisecond},
	} {
		if got := percentile(lat, tt.q); got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, got, tt.want)
		}
	}
	if lat[0] != 100*time.Millisecond {
		t.Error("percentile sorted its input in place")
	}
}
