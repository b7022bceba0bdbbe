// Command audit-webhook-client drives kube-apiserver's own audit webhook backend
// (k8s.io/apiserver/plugin/pkg/audit/webhook wrapped in .../buffered) with kube-apiserver's
// default batch settings, sending the audit.k8s.io/v1 Events it reads (one JSON object per
// line) to the server named in a webhook kubeconfig. Used by the test suite only.
//
// It prints one JSON summary line on stdout: events read, batches the buffered backend handed
// to the webhook backend, batches and events acknowledged (2xx) or given up on after the
// webhook backend's retries, and the wall time.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	auditinternal "k8s.io/apiserver/pkg/apis/audit"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/apiserver/pkg/audit"
	"k8s.io/apiserver/pkg/util/webhook"
	pluginbuffered "k8s.io/apiserver/plugin/pkg/audit/buffered"
	pluginwebhook "k8s.io/apiserver/plugin/pkg/audit/webhook"
)

// counting sits between the buffered backend and the webhook backend: one ProcessEvents call
// is one batch (one POST, retried by the webhook backend as kube-apiserver would).
type counting struct {
	delegate        audit.Backend
	batches         atomic.Int64
	batchesOK       atomic.Int64
	eventsOK        atomic.Int64
	batchesFailed   atomic.Int64
	eventsFailed    atomic.Int64
	largestBatchLen atomic.Int64
	mu              sync.Mutex
}

func (c *counting) Run(stopCh <-chan struct{}) error { return c.delegate.Run(stopCh) }
func (c *counting) Shutdown()                        { c.delegate.Shutdown() }
func (c *counting) String() string                   { return c.delegate.String() }

func (c *counting) ProcessEvents(events ...*auditinternal.Event) bool {
	c.batches.Add(1)
	c.mu.Lock()
	if int64(len(events)) > c.largestBatchLen.Load() {
		c.largestBatchLen.Store(int64(len(events)))
	}
	c.mu.Unlock()
	ok := c.delegate.ProcessEvents(events...)
	if ok {
		c.batchesOK.Add(1)
		c.eventsOK.Add(int64(len(events)))
	} else {
		c.batchesFailed.Add(1)
		c.eventsFailed.Add(int64(len(events)))
	}
	return ok
}

type summary struct {
	EventsRead      int     `json:"events_read"`
	Batches         int64   `json:"batches"`
	BatchesOK       int64   `json:"batches_ok"`
	EventsOK        int64   `json:"events_ok"`
	BatchesFailed   int64   `json:"batches_failed"`
	EventsFailed    int64   `json:"events_failed"`
	EventsDropped   int64   `json:"events_dropped_by_buffer"`
	LargestBatch    int64   `json:"largest_batch"`
	Seconds         float64 `json:"seconds"`
	InitialBackoffS float64 `json:"initial_backoff_seconds"`
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "webhook kubeconfig (as --audit-webhook-config-file)")
	eventsPath := flag.String("events", "-", "file of audit.k8s.io/v1 Events, one per line (- for stdin)")
	rate := flag.Float64("rate", 0, "events per second handed to the backend (0: as fast as read)")
	initialBackoff := flag.Duration("initial-backoff", pluginwebhook.DefaultInitialBackoffDelay,
		"as --audit-webhook-initial-backoff (kube-apiserver's default 10s)")
	flag.Parse()
	if *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "audit-webhook-client: -kubeconfig is required")
		os.Exit(2)
	}

	events, err := readEvents(*eventsPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "audit-webhook-client:", err)
		os.Exit(2)
	}

	// What kube-apiserver does in AuditWebhookOptions.newUntruncatedBackend: the webhook
	// backend for audit.k8s.io/v1 with DefaultRetryBackoffWithInitialDelay, wrapped in the
	// buffered backend with defaultWebhookBatchConfig (buffer 10,000, batches of 400, 30 s
	// max wait, 10 batches/s with a burst of 15, asynchronous delegate).
	hook, err := pluginwebhook.NewBackend(*kubeconfig, auditv1.SchemeGroupVersion,
		webhook.DefaultRetryBackoffWithInitialDelay(*initialBackoff), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "audit-webhook-client: webhook backend:", err)
		os.Exit(2)
	}
	counter := &counting{delegate: hook}
	backend := pluginbuffered.NewBackend(counter, pluginbuffered.BatchConfig{
		BufferSize:     10000,
		MaxBatchSize:   400,
		MaxBatchWait:   30 * time.Second,
		ThrottleEnable: true,
		ThrottleQPS:    10,
		ThrottleBurst:  15,
		AsyncDelegate:  true,
	})

	started := time.Now()
	stopCh := make(chan struct{})
	if err := backend.Run(stopCh); err != nil {
		fmt.Fprintln(os.Stderr, "audit-webhook-client: run:", err)
		os.Exit(1)
	}
	var interval time.Duration
	if *rate > 0 {
		interval = time.Duration(float64(time.Second) / *rate)
	}
	for i, event := range events {
		if interval > 0 {
			time.Sleep(time.Until(started.Add(time.Duration(i) * interval)))
		}
		backend.ProcessEvents(event)
	}
	// As at API-server shutdown: the buffered backend sends what it holds, then waits for
	// every batch in flight (with its retries) to finish.
	close(stopCh)
	backend.Shutdown()

	out := summary{
		EventsRead:      len(events),
		Batches:         counter.batches.Load(),
		BatchesOK:       counter.batchesOK.Load(),
		EventsOK:        counter.eventsOK.Load(),
		BatchesFailed:   counter.batchesFailed.Load(),
		EventsFailed:    counter.eventsFailed.Load(),
		LargestBatch:    counter.largestBatchLen.Load(),
		Seconds:         time.Since(started).Seconds(),
		InitialBackoffS: initialBackoff.Seconds(),
	}
	out.EventsDropped = int64(out.EventsRead) - out.EventsOK - out.EventsFailed
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
}

// readEvents decodes each line into the internal Event type, as the API server holds them.
func readEvents(path string) ([]*auditinternal.Event, error) {
	var in io.Reader = os.Stdin
	if path != "-" {
		file, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer file.Close()
		in = file
	}
	decoder := audit.Codecs.UniversalDecoder(auditinternal.SchemeGroupVersion)
	scanner := bufio.NewScanner(in)
	scanner.Buffer(make([]byte, 1024*1024), 16*1024*1024)
	var events []*auditinternal.Event
	for line := 1; scanner.Scan(); line++ {
		if len(scanner.Bytes()) == 0 {
			continue
		}
		obj, err := runtime.Decode(decoder, scanner.Bytes())
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		event, ok := obj.(*auditinternal.Event)
		if !ok {
			return nil, fmt.Errorf("line %d: %T is no audit Event", line, obj)
		}
		events = append(events, event)
	}
	return events, scanner.Err()
}
