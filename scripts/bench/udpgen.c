/* Copied from shared/notes/baselines/perf/udpgen.c; compiled by bench.py into its temp dir.
   Bounded UDP generator to 127.0.0.1 only: udpgen PORT SECONDS MAXCOUNT PAYLOAD_BYTES [RATE_PPS]
   Binds a sink socket on 127.0.0.1:PORT that is never read (kernel drops at the socket, after the lo tap),
   sends from a connected socket until SECONDS elapse or MAXCOUNT datagrams are sent. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
int main(int argc,char**argv){
  if(argc<5){fprintf(stderr,"usage\n");return 2;}
  int port=atoi(argv[1]); double secs=atof(argv[2]); long maxc=atol(argv[3]); int sz=atoi(argv[4]); double rate=argc>5?atof(argv[5]):0;
  if(secs>60) secs=60;
  if(sz>1400) sz=1400;
  struct sockaddr_in a; memset(&a,0,sizeof a); a.sin_family=AF_INET; a.sin_port=htons(port);
  a.sin_addr.s_addr=htonl(INADDR_LOOPBACK);              /* 127.0.0.1 only */
  int sink=socket(AF_INET,SOCK_DGRAM,0); if(bind(sink,(void*)&a,sizeof a)){perror("bind");return 1;}
  int s=socket(AF_INET,SOCK_DGRAM,0); if(connect(s,(void*)&a,sizeof a)){perror("connect");return 1;}
  char buf[1500]; memset(buf,'x',sizeof buf);
  long n=0,err=0; double t0=now(),t=t0;
  while(n<maxc){
    if(send(s,buf,sz,0)<0)err++; else n++;
    if(rate>0 && (n%50)==0){ double ahead=t0+n/rate-now(); if(ahead>0){struct timespec ts={(time_t)ahead,(long)((ahead-(long)ahead)*1e9)}; nanosleep(&ts,0);} }
    if((n&1023)==0 || rate>0){t=now(); if(t-t0>=secs)break;}
  }
  t=now();
  printf("{\"sent\": %ld, \"errors\": %ld, \"secs\": %.3f, \"pps\": %.0f}\n",n,err,t-t0,n/(t-t0));
  close(s); close(sink); return 0;
}
