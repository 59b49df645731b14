package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/certsrv/certsrv/internal/apierr"
	"github.com/certsrv/certsrv/internal/datadir"
	certsrvv1 "github.com/certsrv/certsrv/proto/certsrv/v1"
)

// Placeholder is the admin API of a CA that is not open yet, because hard
// recovery of a restore is running: over the same TLS 1.3 configuration
// with required client certificates, Ping reports SERVER_STATE_SUSPENDED
// and every other RPC answers CERTSRV_E_SERVER_SUSPENDED (0x80094006).
// It never touches the database. Roles are not checked: a suspended server
// tells any authenticated caller only that it is suspended.
type Placeholder struct {
	grpc   *grpc.Server
	lis    net.Listener
	caName string
	done   chan error

	stopOnce sync.Once
	stopErr  error
}

// StartPlaceholder loads the TLS material of dir, binds listen and starts
// answering. Stop it with Stop before starting the real Server on the same
// address.
func StartPlaceholder(dir datadir.Dir, caName, listen string, logger *slog.Logger) (*Placeholder, error) {
	tlsCfg, err := serverTLSConfig(dir)
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, &ListenError{What: "admin", Addr: listen, Err: err}
	}
	p := &Placeholder{lis: lis, caName: caName, done: make(chan error, 1)}
	p.grpc = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tlsCfg)),
		grpc.UnknownServiceHandler(func(any, grpc.ServerStream) error {
			return apierr.Status(suspendedErr())
		}),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if info.FullMethod != certsrvv1.Admin_Ping_FullMethodName {
				return nil, apierr.Status(suspendedErr())
			}
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(any, grpc.ServerStream, *grpc.StreamServerInfo, grpc.StreamHandler) error {
			return apierr.Status(suspendedErr())
		}),
	)
	certsrvv1.RegisterAdminServer(p.grpc, &placeholderAdmin{p: p})
	if logger == nil {
		logger = slog.Default()
	}
	logger.Info("suspended for restore: answering clients as suspended until recovery ends", "admin", lis.Addr().String())
	go func() {
		err := p.grpc.Serve(lis)
		if errors.Is(err, grpc.ErrServerStopped) {
			err = nil
		}
		p.done <- err
	}()
	return p, nil
}

// Addr is the bound admin address.
func (p *Placeholder) Addr() string { return p.lis.Addr().String() }

// Stop closes the listener and ends every connection at once, and waits
// for the serving goroutine. It is safe to call more than once; later calls
// return the first call's result.
func (p *Placeholder) Stop() error {
	p.stopOnce.Do(func() {
		p.grpc.Stop()
		p.stopErr = <-p.done
	})
	return p.stopErr
}

func suspendedErr() error {
	return apierr.New(apierr.ServerSuspended, "the CA is suspended: hard recovery of a restore is running")
}

// placeholderAdmin answers Ping; the interceptors answer every other
// method as suspended before it reaches the embedded Unimplemented one.
type placeholderAdmin struct {
	certsrvv1.UnimplementedAdminServer
	p *Placeholder
}

func (a *placeholderAdmin) Ping(ctx context.Context, _ *certsrvv1.PingRequest) (*certsrvv1.PingResponse, error) {
	principal, err := peerPrincipal(ctx)
	if err != nil {
		return nil, apierr.Status(err)
	}
	return &certsrvv1.PingResponse{
		State:     certsrvv1.ServerState_SERVER_STATE_SUSPENDED,
		CaName:    a.p.caName,
		Principal: principal,
	}, nil
}

// peerPrincipal is the verified client certificate's common name.
func peerPrincipal(ctx context.Context) (string, error) {
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return "", apierr.New(apierr.Unauthenticated, "no peer")
	}
	ti, ok := tlsInfo(pr.AuthInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return "", apierr.New(apierr.Unauthenticated, "no verified client certificate")
	}
	return ti.State.VerifiedChains[0][0].Subject.CommonName, nil
}
