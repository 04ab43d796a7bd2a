/* New-flow generator for the `flows` stage of scripts/bench/bench.py (compiled at run time).
   flowgen SRCPORT DSTPORT RATE COUNT OUTFILE
   Sends COUNT UDP datagrams on loopback, each one a new flow: from 127.0.0.1:SRCPORT to
   127.A.B.C:DSTPORT with A = 10 + (n >> 16), B = (n >> 8) & 255, C = n & 255 for flow n,
   paced at RATE flows per second. A sink socket on 0.0.0.0:DSTPORT that is never read takes
   them (no ICMP port-unreachable replies). Writes flow n's CLOCK_MONOTONIC send time (int64 ns)
   as record n of OUTFILE and prints one JSON line.
   Bounded: 127.0.0.0/8 only, COUNT <= 2,000,000, at most 60 s. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: flowgen SRCPORT DSTPORT RATE COUNT OUTFILE\n");
    return 2;
  }
  int sport = atoi(argv[1]), dport = atoi(argv[2]);
  double rate = atof(argv[3]);
  long count = atol(argv[4]);
  if (count < 1 || count > 2000000 || rate <= 0 || sport <= 0 || dport <= 0) {
    fprintf(stderr, "flowgen: bad arguments\n");
    return 2;
  }
  int64_t *sent = calloc((size_t)count, sizeof *sent);
  if (!sent) return 1;
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(dport);
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  int sink = socket(AF_INET, SOCK_DGRAM, 0);
  if (bind(sink, (void *)&a, sizeof a)) { perror("bind sink"); return 1; }
  struct sockaddr_in src = a;
  src.sin_port = htons(sport);
  src.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(s, (void *)&src, sizeof src)) { perror("bind source"); return 1; }
  char buf[32];
  memset(buf, 'f', sizeof buf);
  long n = 0, err = 0;
  int64_t t0 = now_ns();
  for (; n < count; n++) {
    int64_t due = t0 + (int64_t)(n / rate * 1e9), t = now_ns();
    if (due > t) {
      struct timespec ts = {(time_t)((due - t) / 1000000000LL), (long)((due - t) % 1000000000LL)};
      nanosleep(&ts, 0);
    }
    if (t - t0 > 60LL * 1000000000LL) break;
    a.sin_addr.s_addr = htonl((127u << 24) | ((10u + (unsigned)(n >> 16)) << 16) | (unsigned)(n & 0xffff));
    sent[n] = now_ns();
    if (sendto(s, buf, sizeof buf, 0, (void *)&a, sizeof a) < 0) err++;
  }
  double secs = (now_ns() - t0) / 1e9;
  FILE *f = fopen(argv[5], "wb");
  if (!f || fwrite(sent, sizeof *sent, (size_t)n, f) != (size_t)n) { perror("write"); return 1; }
  fclose(f);
  printf("{\"sent\": %ld, \"errors\": %ld, \"secs\": %.3f, \"rate\": %.0f}\n", n, err, secs, n / secs);
  close(s);
  close(sink);
  free(sent);
  return 0;
}
