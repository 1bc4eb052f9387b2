// Command client-go-check drives watchcache-server with client-go, the client of
// Kubernetes' own components, configured as they configure it: a typed clientset, a
// shared informer and its lister, and a watch. It fails (exit 1, the reason on stderr)
// on the first answer that differs from what kube-apiserver gives, and prints a JSON
// report of what it saw for tests/client_go.rs to check against the server's state.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// report is what the check saw, printed as JSON on success.
type report struct {
	// Listed is the informer's lister at the end: name=value, sorted.
	Listed []string `json:"listed"`
	// Handled counts the informer's handler calls after its first sync.
	Handled map[string]int `json:"handled"`
	// Watched is the first event of a watch from a list's revision.
	Watched string `json:"watched"`
	// Containers are the names and images of the pod read back after its create.
	Containers []string `json:"containers"`
}

const label = "client-go-check"

func main() {
	server := flag.String("server", "", "the server's URL")
	namespace := flag.String("namespace", "default", "the namespace to work in")
	contentType := flag.String("content-type", "application/json", "the body encoding client-go sends and prefers")
	hang := flag.Duration("hang", time.Minute, "a failsafe: the longest the whole check may take")
	flag.Parse()

	config := &rest.Config{Host: *server}
	config.ContentType = *contentType
	if *contentType != "application/json" {
		config.AcceptContentTypes = *contentType + ",application/json"
	}
	ctx, cancel := context.WithTimeout(context.Background(), *hang)
	defer cancel()
	seen, err := check(ctx, config, *namespace)
	if err != nil {
		fmt.Fprintf(os.Stderr, "client-go-check: %v\n", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(seen); err != nil {
		fmt.Fprintf(os.Stderr, "client-go-check: %v\n", err)
		os.Exit(1)
	}
}

func configMap(name, value string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": label}},
		Data:       map[string]string{"value": value},
	}
}

func check(ctx context.Context, config *rest.Config, namespace string) (*report, error) {
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		return nil, err
	}
	maps := clientset.CoreV1().ConfigMaps(namespace)
	seen := &report{Handled: map[string]int{}}

	// The typed clientset: create, read, replace, the errors components branch on.
	created, err := maps.Create(ctx, configMap("a", "1"), metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	if created.UID == "" || created.ResourceVersion == "" || created.Namespace != namespace {
		return nil, fmt.Errorf("create answered no uid, revision or namespace: %+v", created.ObjectMeta)
	}
	if _, err := maps.Create(ctx, configMap("a", "again"), metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("a second create: want AlreadyExists, got %v", err)
	}
	read, err := maps.Get(ctx, "a", metav1.GetOptions{})
	if err != nil || read.Data["value"] != "1" || read.UID != created.UID {
		return nil, fmt.Errorf("get after create: %v %+v", err, read)
	}
	read.Data["value"] = "2"
	replaced, err := maps.Update(ctx, read, metav1.UpdateOptions{})
	if err != nil || replaced.ResourceVersion == created.ResourceVersion {
		return nil, fmt.Errorf("update: %v, revision %s after %s", err, replaced.ResourceVersion, created.ResourceVersion)
	}
	if _, err := maps.Update(ctx, read, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		return nil, fmt.Errorf("a stale update: want Conflict, got %v", err)
	}
	if _, err := maps.Get(ctx, "missing", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("get of a missing name: want NotFound, got %v", err)
	}

	// A pod, whose spec is the richest of the served kinds.
	pods := clientset.CoreV1().Pods(namespace)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "web", Image: "nginx:1.25", Ports: []corev1.ContainerPort{{ContainerPort: 80}}},
			{Name: "sidecar", Image: "busybox", Command: []string{"sleep", "3600"}},
		}},
	}
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("pod create: %w", err)
	}
	readPod, err := pods.Get(ctx, "p", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("pod get: %w", err)
	}
	for _, container := range readPod.Spec.Containers {
		seen.Containers = append(seen.Containers, container.Name+"="+container.Image)
	}
	if err := pods.Delete(ctx, "p", metav1.DeleteOptions{}); err != nil {
		return nil, fmt.Errorf("pod delete: %w", err)
	}

	// A shared informer and its lister, as every controller reads.
	factory := informers.NewSharedInformerFactoryWithOptions(clientset, 0, informers.WithNamespace(namespace))
	informer := factory.Core().V1().ConfigMaps()
	handled := make(chan string, 64)
	informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(interface{}) { handled <- "add" },
		UpdateFunc: func(interface{}, interface{}) { handled <- "update" },
		DeleteFunc: func(interface{}) { handled <- "delete" },
	})
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), informer.Informer().HasSynced) {
		return nil, fmt.Errorf("the informer never synced")
	}
	if initial := <-handled; initial != "add" {
		return nil, fmt.Errorf("the informer's first call: want the listed add, got %s", initial)
	}
	for i := 0; i < 5; i++ {
		if _, err := maps.Create(ctx, configMap(fmt.Sprintf("b%d", i), "1"), metav1.CreateOptions{}); err != nil {
			return nil, fmt.Errorf("create b%d: %w", i, err)
		}
	}
	b0, err := maps.Get(ctx, "b0", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get b0: %w", err)
	}
	b0.Data["value"] = "2"
	if _, err := maps.Update(ctx, b0, metav1.UpdateOptions{}); err != nil {
		return nil, fmt.Errorf("update b0: %w", err)
	}
	if err := maps.Delete(ctx, "b1", metav1.DeleteOptions{}); err != nil {
		return nil, fmt.Errorf("delete b1: %w", err)
	}
	for want := 5 + 1 + 1; want > 0; want-- {
		select {
		case call := <-handled:
			seen.Handled[call]++
		case <-ctx.Done():
			return nil, fmt.Errorf("the informer saw %v of 5 adds, 1 update, 1 delete", seen.Handled)
		}
	}
	listed, err := informer.Lister().ConfigMaps(namespace).List(labels.SelectorFromSet(labels.Set{"app": label}))
	if err != nil {
		return nil, fmt.Errorf("lister: %w", err)
	}
	for _, item := range listed {
		seen.Listed = append(seen.Listed, item.Name+"="+item.Data["value"])
	}
	sort.Strings(seen.Listed)

	// A watch from a list's revision sees what comes after it, and nothing before.
	list, err := maps.List(ctx, metav1.ListOptions{LabelSelector: "app=" + label})
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	watcher, err := maps.Watch(ctx, metav1.ListOptions{LabelSelector: "app=" + label, ResourceVersion: list.ResourceVersion})
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	defer watcher.Stop()
	if _, err := maps.Create(ctx, configMap("w", "1"), metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create w: %w", err)
	}
	select {
	case event, open := <-watcher.ResultChan():
		if !open {
			return nil, fmt.Errorf("the watch ended before its first event")
		}
		if event.Type == watch.Error {
			return nil, fmt.Errorf("the watch's first event is an error: %v", apierrors.FromObject(event.Object))
		}
		watched, ok := event.Object.(*corev1.ConfigMap)
		if !ok {
			return nil, fmt.Errorf("the watch's first event holds a %T", event.Object)
		}
		seen.Watched = string(event.Type) + " " + watched.Name
	case <-ctx.Done():
		return nil, fmt.Errorf("the watch saw nothing")
	}
	return seen, nil
}
