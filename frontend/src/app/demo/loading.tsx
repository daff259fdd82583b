import Loading from "@/components/Loading";

export default function DemoLoading() {
  return <Loading what="live demo" />;
}
