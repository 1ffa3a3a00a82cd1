/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* scripts/bench-ebpf-floor: getpid ns/call with no program, an empty sys_enter program,
 * empty sys_enter + sys_exit, and a clock-read-only sys_enter; 9 interleaved rounds of
 * 2M calls, medians. */
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e9+t.tv_nsec;}
static double loop(long n){double s=now();for(long i=0;i<n;i++)syscall(SYS_getpid);return (now()-s)/n;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){ if(argc<2)return 2;
  long n=2000000; int rounds=9;
  struct bpf_object *o=bpf_object__open_file(argv[1],NULL); if(bpf_object__load(o))return 1;
  struct bpf_program *e=bpf_object__find_program_by_name(o,"e_empty"),*x=bpf_object__find_program_by_name(o,"x_empty"),*k=bpf_object__find_program_by_name(o,"e_ktime");
  double r[4][16]; const char*nm[4]={"none","empty sys_enter","empty enter+exit","ktime-only sys_enter"};
  {double s=now(); for(long i=0;i<n;i++){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);} printf("userspace clock_gettime (vDSO, tsc): %.1f ns\n",(now()-s)/n);}
  for(int i=0;i<rounds;i++){
    r[0][i]=loop(n);
    struct bpf_link*a=bpf_program__attach(e); r[1][i]=loop(n);
    struct bpf_link*b=bpf_program__attach(x); r[2][i]=loop(n); bpf_link__destroy(b); bpf_link__destroy(a);
    a=bpf_program__attach(k); r[3][i]=loop(n); bpf_link__destroy(a);
  }
  for(int j=0;j<4;j++){qsort(r[j],rounds,8,cmp);printf("%-22s getpid %6.1f ns (+%.1f)\n",nm[j],r[j][rounds/2],r[j][rounds/2]-r[0][rounds/2]);}
}
