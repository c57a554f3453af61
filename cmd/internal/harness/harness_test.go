package harness

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestListenOctets sends octet-counted frames, one split across writes,
// then a frame that breaks the framing: the messages before it arrive
// whole and in order, and Close returns with the connection still open.
func TestListenOctets(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv, err := ListenOctets("127.0.0.1:0", func(msg []byte) {
		mu.Lock()
		got = append(got, string(msg))
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, part := range []string{"5 hello", "11 hello", " world", "3 a b", "x garbage", "3 end"} {
		if _, err := c.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := []string{"hello", "hello world", "a b"}
	for deadline := time.Now().Add(5 * time.Second); ; {
		mu.Lock()
		done := len(got) >= len(want)
		mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.Close()
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Fatalf("messages %q, want %q (nothing after the broken frame)", got, want)
	}
}

func TestTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(path, []byte("0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	for n, want := range map[int]string{3: "789", 10: "0123456789", 20: "0123456789"} {
		if got := Tail(path, n); got != want {
			t.Errorf("Tail(%d) = %q, want %q", n, got, want)
		}
	}
	if got := Tail(filepath.Join(t.TempDir(), "none"), 3); got == "" {
		t.Error("Tail of a missing file should say why")
	}
}

// TestOutput: writes from several goroutines all arrive; with Max, only
// the first Max bytes are kept and Write still reports the whole write.
func TestOutput(t *testing.T) {
	var o Output
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				o.Write([]byte("ab"))
			}
		})
	}
	wg.Wait()
	if n := len(o.String()); n != 1600 {
		t.Errorf("%d bytes collected, want 1600", n)
	}
	capped := Output{Max: 5}
	for _, w := range []string{"abc", "def", "ghi"} {
		if n, err := capped.Write([]byte(w)); n != 3 || err != nil {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	if got := capped.String(); got != "abcde" {
		t.Errorf("capped output %q, want %q", got, "abcde")
	}
}
