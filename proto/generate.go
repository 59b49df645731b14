// Package proto holds the certsrv API definitions. The generated Go code in
// certsrv/v1 is committed; regenerate it after editing a .proto file with
//
//	go generate ./proto
//
// which needs protoc (Debian: protobuf-compiler) and the plugins
// google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12 and
// google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1 on PATH.
package proto

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative certsrv/v1/certsrv.proto
