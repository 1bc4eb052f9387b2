package cacher

// Benchmarks of the Kubernetes Cacher (not upstream), the peer in PERF.md. Drop this file into
// k8s.io/apiserver/pkg/storage/cacher of a Kubernetes 1.20.2 tree.
// It reuses the package's own whitebox test helpers: newTestCacher,
// dummyStorage, fakeTimeBudget, newTestWatchCache.

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apiserver/pkg/apis/example"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/client-go/tools/cache"
)

func anchorPod(i int, rv uint64) *example.Pod {
	return &example.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            "pod-" + strconv.Itoa(i),
			Namespace:       "ns-" + strconv.Itoa(i%10),
			Labels:          map[string]string{"app": "app-" + strconv.Itoa(i%100)},
			ResourceVersion: strconv.FormatUint(rv, 10),
		},
		Spec: example.PodSpec{NodeName: "node-" + strconv.Itoa(i%50)},
	}
}

func newAnchorCacher(b *testing.B) *Cacher {
	c, _, err := newTestCacher(&dummyStorage{})
	if err != nil {
		b.Fatalf("newTestCacher: %v", err)
	}
	c.ready.wait()
	// never terminate slow watchers during the benchmark
	c.dispatchTimeoutBudget = &fakeTimeBudget{}
	return c
}

// watchCache.Add of distinct objects: store insert + ring buffer + event handler (no-op).
func BenchmarkAnchor_WatchCacheAdd(b *testing.B) {
	wc := newTestWatchCache(defaultLowerBoundCapacity, &cache.Indexers{})
	// newTestWatchCache's GetAttrsFunc only accepts core/v1 Pods
	pods := make([]*v1.Pod, b.N)
	for i := range pods {
		p := anchorPod(i, uint64(i+1))
		pods[i] = &v1.Pod{ObjectMeta: p.ObjectMeta, Spec: v1.PodSpec{NodeName: p.Spec.NodeName}}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := wc.Add(pods[i]); err != nil {
			b.Fatal(err)
		}
	}
}

// End-to-end: watchCache.Update -> Cacher.processEvent -> dispatchEvents ->
// N cacheWatchers -> ResultChan consumers. ns/op = per produced event, measured
// until every watcher has received every event.
func benchFanout(b *testing.B, watchers int, selective bool) {
	c := newAnchorCacher(b)
	defer c.Stop()
	const objects = 1000
	for i := 0; i < objects; i++ {
		if err := c.watchCache.Add(anchorPod(i, uint64(i+1))); err != nil {
			b.Fatal(err)
		}
	}
	rv := uint64(objects)
	pods := make([]*example.Pod, b.N)
	for i := range pods {
		pods[i] = anchorPod(i%objects, rv+uint64(i)+1)
	}
	var received int64
	expectedPerWatcher := b.N
	var wg sync.WaitGroup
	for w := 0; w < watchers; w++ {
		pred := storage.Everything
		if selective {
			// each watcher selects one of 100 label values -> ~1% of events
			pred = storage.SelectionPredicate{
				Label:    labels.SelectorFromSet(labels.Set{"app": "app-" + strconv.Itoa(w%100)}),
				Field:    storage.Everything.Field,
				GetAttrs: storage.DefaultNamespaceScopedAttr,
			}
		}
		wi, err := c.Watch(context.Background(), "pods", storage.ListOptions{ResourceVersion: strconv.FormatUint(rv, 10), Predicate: pred})
		if err != nil {
			b.Fatal(err)
		}
		want := expectedPerWatcher
		if selective {
			want = 0
			for i := 0; i < b.N; i++ {
				if (i%objects)%100 == w%100 {
					want++
				}
			}
		}
		wg.Add(1)
		go func(want int) {
			defer wg.Done()
			defer wi.Stop()
			got := 0
			for got < want {
				if _, ok := <-wi.ResultChan(); !ok {
					panic(fmt.Sprintf("watch closed after %d/%d events", got, want))
				}
				got++
			}
			atomic.AddInt64(&received, int64(got))
		}(want)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := c.watchCache.Update(pods[i]); err != nil {
			b.Fatal(err)
		}
	}
	// wait for all deliveries
	wg.Wait()
	b.StopTimer()
	if watchers > 0 {
		b.ReportMetric(float64(atomic.LoadInt64(&received))/time.Since(start).Seconds(), "deliveries/s")
	}
}

func BenchmarkAnchor_CacherFanout(b *testing.B) {
	for _, n := range []int{0, 1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("watchers=%d", n), func(b *testing.B) { benchFanout(b, n, false) })
	}
}

func BenchmarkAnchor_CacherFanoutSelective(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("watchers=%d", n), func(b *testing.B) { benchFanout(b, n, true) })
	}
}

// List served from the watch cache (ResourceVersion "0").
func BenchmarkAnchor_CacherList(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		for _, sel := range []bool{false, true} {
			b.Run(fmt.Sprintf("objects=%d/labelSelector=%v", n, sel), func(b *testing.B) {
				c := newAnchorCacher(b)
				defer c.Stop()
				for i := 0; i < n; i++ {
					if err := c.watchCache.Add(anchorPod(i, uint64(i+1))); err != nil {
						b.Fatal(err)
					}
				}
				pred := storage.Everything
				if sel {
					pred = storage.SelectionPredicate{
						Label:    labels.SelectorFromSet(labels.Set{"app": "app-7"}),
						Field:    storage.Everything.Field,
						GetAttrs: storage.DefaultNamespaceScopedAttr,
					}
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					list := &example.PodList{}
					if err := c.List(context.Background(), "pods", storage.ListOptions{ResourceVersion: "0", Predicate: pred}, list); err != nil {
						b.Fatal(err)
					}
					if !sel && len(list.Items) != n {
						b.Fatalf("got %d items", len(list.Items))
					}
				}
			})
		}
	}
}
