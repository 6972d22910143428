package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTLS(t *testing.T) {
	pki := newTestPKI(t)
	check := func(t *testing.T, m *mosquitto, cfg Config, recTLS *tls.Config) {
		id := deviceID(t)
		cfg.DeviceID = id
		rec := subscribe(t, m.url(), recTLS, "bnnd/"+id+"/#")
		c := startClient(t, cfg, nil)
		rec.waitFor("bnnd/"+id+"/status", 5*time.Second, func(m recMsg) bool { return m.payload == statusOnline })
		if err := c.Publish(TopicProgress, map[string]int{"step": 7}); err != nil {
			t.Fatal(err)
		}
		rec.waitFor("bnnd/"+id+"/progress", 5*time.Second, func(m recMsg) bool { return m.payload == `{"step":7}` })
	}
	t.Run("server-cert", func(t *testing.T) {
		m := startMosquitto(t, mosquittoOpts{tls: pki})
		recTLS := &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1"}
		for _, scheme := range []string{"ssl", "mqtts"} {
			url := strings.Replace(m.url(), "ssl", scheme, 1)
			check(t, m, Config{Broker: url, CAFile: pki.caFile}, recTLS)
		}
		// A CA we do not trust: the error says why.
		c := newClient(t, Config{Broker: m.url(), DeviceID: deviceID(t), ConnectTimeout: 2 * time.Second}, nil)
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err := c.WaitConnected(ctx)
		if err == nil || !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), m.url()) {
			t.Errorf("connecting without the test CA: %v; want a certificate error naming %s", err, m.url())
		}
	})
	t.Run("client-cert", func(t *testing.T) {
		m := startMosquitto(t, mosquittoOpts{tls: pki, mutualTLS: true})
		cert, err := tls.LoadX509KeyPair(pki.clientCert, pki.clientKey)
		if err != nil {
			t.Fatal(err)
		}
		recTLS := &tls.Config{RootCAs: pki.pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{cert}}
		check(t, m, Config{Broker: m.url(), CAFile: pki.caFile, CertFile: pki.clientCert, KeyFile: pki.clientKey}, recTLS)

		// Without a client certificate the broker refuses the handshake.
		c := newClient(t, Config{Broker: m.url(), DeviceID: deviceID(t), CAFile: pki.caFile, ConnectTimeout: 2 * time.Second}, nil)
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		if err := c.WaitConnected(ctx); err == nil {
			t.Error("connected to a broker requiring a client certificate without one")
		}
	})
	t.Run("bad-files", func(t *testing.T) {
		dir := t.TempDir()
		junk := filepath.Join(dir, "junk.pem")
		if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			cfg  Config
			want string
		}{
			{Config{Broker: "ssl://127.0.0.1:1", CAFile: junk}, "ca_file " + junk + ": no PEM certificate"},
			{Config{Broker: "ssl://127.0.0.1:1", CAFile: filepath.Join(dir, "missing.pem")}, "ca_file: open"},
			{Config{Broker: "ssl://127.0.0.1:1", CertFile: junk, KeyFile: junk}, "cert_file " + junk},
		} {
			tc.cfg.DeviceID = "d"
			c := newClient(t, tc.cfg, nil)
			if err := c.Start(context.Background()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Start(%+v) = %v; want an error containing %q", tc.cfg, err, tc.want)
			}
		}
	})
}

func TestCredentials(t *testing.T) {
	m := startMosquitto(t, mosquittoOpts{passwords: map[string]string{"bnnd": "s3cret-pw", "other": "x"}})

	t.Run("wrong-password", func(t *testing.T) {
		c := newClient(t, Config{Broker: m.url(), DeviceID: deviceID(t), Username: "bnnd", Password: "guess"}, nil)
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err := c.WaitConnected(ctx)
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("wrong password: %v; want ErrAuth", err)
		}
		for _, want := range []string{m.url(), `"bnnd"`, "refused"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("wrong password error %q does not mention %s", err, want)
			}
		}
		if st := c.Stats(); st.Connected || !strings.Contains(st.LastError, "refused") {
			t.Errorf("stats after refusal: %+v", st)
		}
	})
	t.Run("password-file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "pw")
		if err := os.WriteFile(file, []byte("s3cret-pw\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		startClient(t, Config{Broker: m.url(), DeviceID: deviceID(t), Username: "bnnd", PasswordFile: file}, nil)
	})
	t.Run("password-env", func(t *testing.T) {
		t.Setenv("BNND_TEST_MQTT_PASSWORD", "s3cret-pw")
		startClient(t, Config{Broker: m.url(), DeviceID: deviceID(t), Username: "bnnd", PasswordEnv: "BNND_TEST_MQTT_PASSWORD"}, nil)
	})
	t.Run("password-sources-missing", func(t *testing.T) {
		for _, cfg := range []Config{
			{Username: "bnnd", PasswordFile: filepath.Join(t.TempDir(), "nope")},
			{Username: "bnnd", PasswordEnv: "BNND_TEST_UNSET_VARIABLE"},
		} {
			cfg.Broker, cfg.DeviceID = m.url(), "d"
			c := newClient(t, cfg, nil)
			err := c.Start(context.Background())
			if err == nil || !strings.Contains(err.Error(), "password") {
				t.Errorf("Start with %+v: %v; want an error about the password source", cfg, err)
			}
		}
	})
}
