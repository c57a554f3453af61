module github.com/mdbridge/mdbridge

go 1.26.8
