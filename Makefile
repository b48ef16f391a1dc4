# tern - build, run, test, asan, fuzz, bench.
# Dependencies come from pkg-config; output goes to $(B) (build/ by default).

B        ?= build
CC       ?= cc
PKGS     := libevent libevent_openssl libevent_pthreads openssl libconfig hiredis
OPT      ?= -O2
SAN      ?=
CFLAGS   += -std=gnu11 -Wall -Wextra -Werror $(OPT) -g $(SAN) -D_GNU_SOURCE -I.
CFLAGS   += $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread
LDFLAGS  += $(SAN)

PROTO_SRC  := $(wildcard proto/*.c)
AUTH_SRC   := $(wildcard auth/*.c)
CONF_SRC   := $(wildcard conf/*.c)
SERVER_SRC := $(wildcard server/*.c server/*/*.c)
LIB_SRC    := $(PROTO_SRC) $(AUTH_SRC) $(CONF_SRC)
LIB_OBJ    := $(LIB_SRC:%.c=$(B)/%.o)
SERVER_OBJ := $(SERVER_SRC:%.c=$(B)/%.o)
UNIT_SRC   := $(wildcard test/unit/test_*.c)
UNIT_BIN   := $(UNIT_SRC:test/unit/%.c=$(B)/%)
BENCH_SRC  := $(wildcard test/bench/ternbench.c test/bench/bench_*.c)
TOOL_BIN   := $(B)/ternc $(B)/ternbench $(B)/ternecho

.PHONY: all run test asan tsan soak fuzz bench clean deps test-deps install uninstall
all: $(B)/ternd $(UNIT_BIN) $(TOOL_BIN)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/ternd: $(SERVER_OBJ) $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The server below its transports, for unit tests that drive the TURN service
# and allocations with no client sockets and no Redis: cluster/ is replaced
# by a fake (test/unit/fake_cluster.c) that answers now, later or never.
CORE_OBJ   := $(patsubst %.c,$(B)/%.o,$(wildcard server/core/*.c server/relay/*.c server/stun/*.c server/turn/*.c))
UNIT_EXTRA := $(CORE_OBJ) $(B)/test/unit/fake_cluster.o $(B)/test/unit/turn_harness.o

$(B)/test_%: $(B)/test/unit/test_%.o $(LIB_OBJ) $(UNIT_EXTRA)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(B)/ternc: $(B)/client/ternc.o $(B)/client/nat.o $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/ternbench: $(BENCH_SRC:%.c=$(B)/%.o) $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The kernel's ceiling for the benchmark: a bare recvmmsg/sendmmsg UDP echo.
$(B)/ternecho: $(B)/test/bench/echo.o
	$(CC) $(LDFLAGS) -o $@ $^ -lpthread

deps:
	scripts/install-deps

test-deps:
	scripts/install-deps --test

# Installs what is missing, builds, and runs ternd on the embedded default config.
run: deps
	$(MAKE) $(B)/ternd $(B)/ternc
	$(B)/ternd -c conf/ternd.conf

# The whole suite: unit, integration and interop; ends with "N passed, N failed".
test: test-deps
	$(MAKE) all
	B=$(B) test/run-all

# The whole suite again under AddressSanitizer + UBSan.
asan: test-deps
	$(MAKE) B=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" all
	B=build-asan SKIP_ASAN=1 SKIP_TSAN=1 FUZZ_SECONDS=0 ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 test/run-all

# ternd under ThreadSanitizer with the integration tests that run several
# workers, Redis and the metrics endpoint (also a stage of make test).
tsan: test-deps
	TSAN_ONLY=1 test/run-all

# libFuzzer targets: decoder, stream framer, Binding service, TURN service
# (FUZZ_SECONDS each).
FUZZ_SECONDS ?= 30
fuzz: test-deps
	B=$(B) FUZZ_SECONDS=$(FUZZ_SECONDS) test/fuzz/run

# Churn, faults and floods against one ternd for SOAK_SECONDS, then proof
# that it gave everything back (test/soak/soak.py; make test runs 90 s).
SOAK_SECONDS ?= 3600
soak: test-deps
	$(MAKE) all
	B=$(B) SOAK_SECONDS=$(SOAK_SECONDS) /usr/bin/python3 test/soak/soak.py

bench: test-deps
	$(MAKE) all
	B=$(B) test/bench/run

# Installation (GNU directory variables; DESTDIR honoured). The
# configuration is installed only where none exists: an operator's edits
# are never overwritten.
PREFIX     ?= /usr/local
prefix     ?= $(PREFIX)
bindir     ?= $(prefix)/bin
sbindir    ?= $(prefix)/sbin
mandir     ?= $(prefix)/share/man
sysconfdir ?= $(prefix)/etc
INSTALL    ?= install

install: $(B)/ternd $(B)/ternc
	$(INSTALL) -D -m 0755 $(B)/ternd $(DESTDIR)$(sbindir)/ternd
	$(INSTALL) -D -m 0755 $(B)/ternc $(DESTDIR)$(bindir)/ternc
	$(INSTALL) -D -m 0644 client/ternc.1 $(DESTDIR)$(mandir)/man1/ternc.1
	@if [ -e $(DESTDIR)$(sysconfdir)/tern/ternd.conf ]; then \
	    echo "install: keeping $(DESTDIR)$(sysconfdir)/tern/ternd.conf"; \
	else \
	    $(INSTALL) -D -m 0644 conf/ternd.conf $(DESTDIR)$(sysconfdir)/tern/ternd.conf; \
	fi

# Leaves the configuration, as a package manager would.
uninstall:
	rm -f $(DESTDIR)$(sbindir)/ternd $(DESTDIR)$(bindir)/ternc $(DESTDIR)$(mandir)/man1/ternc.1

clean:
	rm -rf build build-asan build-tsan build-fuzz

-include $(shell find $(B) -name '*.d' 2>/dev/null)
