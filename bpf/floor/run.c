/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* scripts/bench-ebpf-floor: getpid ns/call with no program and with each empty program of
 * floor.bpf.c attached alone (plus empty sys_enter + sys_exit together); rounds
 * interleaved, medians. Then, with kernel.bpf_stats_enabled=1, each program's own
 * run_time_ns/run_cnt: what bpf_stats charges a program that does nothing. */
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e9+t.tv_nsec;}
static double loop(long n){double s=now();for(long i=0;i<n;i++)syscall(SYS_getpid);return (now()-s)/n;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
static void stats(int on){FILE*f=fopen("/proc/sys/kernel/bpf_stats_enabled","w");if(f){fprintf(f,"%d",on);fclose(f);}}
#define NV 6
static const char *nm[NV]={"none","tp_btf sys_enter","tp_btf sys_exit","raw_tp sys_exit","tracepoint sys_exit","tp_btf enter+exit"};
static const char *pn[NV][2]={{0,0},{"e_empty",0},{"x_empty",0},{"x_rawtp",0},{"x_tp",0},{"e_empty","x_empty"}};
int main(int argc,char**argv){ if(argc<2)return 2;
  long n=argc>2?atol(argv[2]):2000000; int rounds=argc>3?atoi(argv[3]):9; if(rounds>32)rounds=32;
  struct bpf_object *o=bpf_object__open_file(argv[1],NULL); if(bpf_object__load(o))return 1;
  double r[NV+1][32];
  {double s=now(); for(long i=0;i<n;i++){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);} printf("userspace clock_gettime (vDSO): %.1f ns\n",(now()-s)/n);}
  struct bpf_program *k=bpf_object__find_program_by_name(o,"e_ktime");
  for(int i=0;i<rounds;i++){
    for(int v=0;v<NV;v++){
      struct bpf_link *l[2]={0,0};
      for(int j=0;j<2&&pn[v][j];j++){l[j]=bpf_program__attach(bpf_object__find_program_by_name(o,pn[v][j])); if(!l[j]){fprintf(stderr,"attach %s failed\n",pn[v][j]);return 1;}}
      r[v][i]=loop(n);
      for(int j=0;j<2;j++) if(l[j]) bpf_link__destroy(l[j]);
    }
    struct bpf_link *a=bpf_program__attach(k); r[NV][i]=loop(n); bpf_link__destroy(a);
  }
  for(int v=0;v<=NV;v++){qsort(r[v],rounds,8,cmp);printf("%-22s getpid %6.1f ns (+%.1f)\n",v<NV?nm[v]:"ktime-only sys_enter",r[v][rounds/2],r[v][rounds/2]-r[0][rounds/2]);}
  /* bpf_stats: each empty exit program alone, statistics on. */
  stats(1);
  const char *sp[]={"x_empty","x_rawtp","x_tp","e_ktime"};
  for(int j=0;j<4;j++){
    struct bpf_program *p=bpf_object__find_program_by_name(o,sp[j]);
    struct bpf_prog_info b={0},e={0}; __u32 len=sizeof(b);
    bpf_obj_get_info_by_fd(bpf_program__fd(p),&b,&len);
    struct bpf_link *l=bpf_program__attach(p); double t=loop(n); bpf_link__destroy(l);
    len=sizeof(e); bpf_obj_get_info_by_fd(bpf_program__fd(p),&e,&len);
    unsigned long long c=e.run_cnt-b.run_cnt, ns=e.run_time_ns-b.run_time_ns;
    printf("stats on: %-8s getpid %6.1f ns, bpf_stats %5.1f ns/run\n",sp[j],t,c?(double)ns/c:0);
  }
  stats(0);
}
