import Loading from "@/components/Loading";

export default function ServiceLoading() {
  return <Loading what="service" />;
}
